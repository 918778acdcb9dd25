"""Sketch generators: imagine the state after a thought.

``SketchGenerator`` is the protocol the reasoning loop calls. ``SketchPipeline`` is the trained
diffusion sketcher (a diffusers pipeline); ``load_sketcher("maze")`` loads the shipped default.
``OracleSketcher`` (perfect imagination from the simulator), ``SlipSketcher`` (the oracle with
random slips drawn from each sketch's generator) and ``BlankSketcher`` (text-only chains) are
reference components.
"""
from pathlib import Path

from imagegen.base import BlankSketcher, OracleSketcher, SketchGenerator, SlipSketcher, check_sketch_inputs

PRETRAINED = Path(__file__).parent / "pretrained"


def load_sketcher(name_or_path: str, device: str = "cpu"):
    """A `SketchPipeline` from a shipped default (``maze``, ``frozenlake``, ``minibehavior`` or a
    task id of theirs) or from a directory written by ``save_pretrained``."""
    from imagegen.data import ENVIRONMENTS, environment_of
    from imagegen.pipeline import SketchPipeline

    path = Path(name_or_path)
    if not path.is_dir():
        try:
            environment = environment_of(name_or_path)
        except (KeyError, ValueError):
            raise ValueError(f"{name_or_path!r} is neither a sketcher directory nor one of {sorted(ENVIRONMENTS)}") from None
        path = PRETRAINED / environment
        if not (path / "model_index.json").exists():
            raise ValueError(f"no shipped sketcher for {environment!r} yet (train one: vot train sketcher --task {environment})")
    import torch

    pipe = SketchPipeline.from_pretrained(path, dtype=torch.float32)  # shipped weights are fp16
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


__all__ = ["SketchGenerator", "OracleSketcher", "SlipSketcher", "BlankSketcher", "check_sketch_inputs", "load_sketcher", "PRETRAINED"]
