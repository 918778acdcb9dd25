"""Sketch generators: imagine the state after a thought.

``SketchGenerator`` is the protocol the reasoning loop calls. ``SketchPipeline`` is the trained
diffusion sketcher (a diffusers pipeline; ``from imagegen import SketchPipeline`` imports it, and
with it torch and diffusers, on first use); ``load_sketcher("maze")`` loads the shipped default.
``OracleSketcher`` (perfect imagination from the simulator), ``SlipSketcher`` (the oracle with
random slips drawn from each sketch's generator) and ``BlankSketcher`` (text-only chains) are
reference components. ``LocalDiffusersSketcher`` wraps a local InstructPix2Pix-style pipeline.
"""
import json
from pathlib import Path

from imagegen.base import BlankSketcher, OracleSketcher, SketchGenerator, SlipSketcher, check_sketch_inputs

PRETRAINED = Path(__file__).parent / "pretrained"
_LAZY = {"SketchPipeline": "imagegen.pipeline", "LocalDiffusersSketcher": "imagegen.local"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'imagegen' has no attribute {name!r}")


def load_sketcher(name_or_path: str, device: str = "cpu"):
    """A diffusion sketcher on ``device`` (bf16 on CUDA), its attention backend chosen
    (``sketcher.attention_backend``: ``sdpa``, ``xformers`` or ``none``).

    ``name_or_path``: a shipped default (``maze``, ``frozenlake``, ``minibehavior`` or a task id of
    theirs) or a directory: one written by ``SketchPipeline.save_pretrained``, or a local
    InstructPix2Pix-style diffusers pipeline (`LocalDiffusersSketcher`)."""
    from imagegen.data import ENVIRONMENTS, environment_of

    path = Path(name_or_path)
    if not path.is_dir():
        try:
            environment = environment_of(name_or_path)
        except (KeyError, ValueError):
            raise ValueError(f"{name_or_path!r} is neither a sketcher directory nor one of {sorted(ENVIRONMENTS)}") from None
        path = PRETRAINED / environment
        if not (path / "model_index.json").exists():
            raise ValueError(f"no shipped sketcher for {environment!r} yet (train one: vot train sketcher --task {environment})")
    index = path / "model_index.json"
    if not index.is_file():
        raise ValueError(f"{path} is not a diffusers pipeline directory (no model_index.json)")
    from imagegen.quiet import quiet_loading

    if json.loads(index.read_text()).get("_class_name") == "StableDiffusionInstructPix2PixPipeline":
        from imagegen.local import LocalDiffusersSketcher

        with quiet_loading():
            return LocalDiffusersSketcher(path, device=device)
    import torch

    from imagegen.attention import configure_attention
    from imagegen.pipeline import SketchPipeline

    with quiet_loading():
        pipe = SketchPipeline.from_pretrained(path, dtype=torch.float32)  # shipped weights are fp16
    pipe.set_progress_bar_config(disable=True)
    pipe = pipe.to(device)
    if torch.device(device).type == "cuda":
        pipe.to(torch.bfloat16)
    pipe.attention_backend = configure_attention(pipe.unet)
    return pipe


__all__ = ["SketchGenerator", "SketchPipeline", "OracleSketcher", "SlipSketcher", "BlankSketcher",
           "LocalDiffusersSketcher", "check_sketch_inputs", "load_sketcher", "PRETRAINED"]
