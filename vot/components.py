"""Build the loop's components by name (for the CLI and bundles). Reference components say so."""
from __future__ import annotations

import tasks

POLICIES = ("simulated",)
SKETCHERS = ("oracle", "blank", "default")  # or a SketchPipeline directory
ENCODERS = ("pixel", "none")
REFERENCE = {"simulated", "oracle", "blank", "pixel"}


def check_names(policy: str, sketcher: str, encoder: str) -> None:
    from pathlib import Path

    for kind, name, known in (("policy", policy, POLICIES), ("sketcher", sketcher, SKETCHERS), ("encoder", encoder, ENCODERS)):
        if kind == "sketcher" and Path(name, "model_index.json").is_file():
            continue
        if name not in known:
            extra = " or a SketchPipeline directory" if kind == "sketcher" else ""
            raise ValueError(f"unknown {kind} {name!r}; available: {', '.join(known)}{extra}")


def build_sketcher(task, name: str, device: str = "cpu"):
    """``oracle`` / ``blank`` (reference), ``default`` (the shipped diffusion sketcher of the task's
    environment) or a SketchPipeline directory. Returns (sketcher, attention backend)."""
    from imagegen import BlankSketcher, OracleSketcher, load_sketcher
    from imagegen.attention import configure_attention

    if name == "oracle":
        return OracleSketcher(task), "n/a (no diffusion model)"
    if name == "blank":
        return BlankSketcher(), "n/a (no diffusion model)"
    pipe = load_sketcher(task.id if name == "default" else name, device=device)
    if device == "cuda":
        import torch

        pipe.to(torch.bfloat16)
    return pipe, configure_attention(pipe.unet)


def build_reasoner(task: str, *, policy: str = "simulated", sketcher: str = "oracle", encoder: str = "pixel",
                   error_rate: float = 0.3, seed: int = 0, max_steps: int = 64, device: str = "cpu",
                   sketch_steps: int | None = None):
    """A `Reasoner` from component names; ``reasoner.attention_backend`` says what the sketcher uses."""
    import torch

    from vision_encoder import PixelPatchEncoder
    from vot.policy import SimulatedPolicy
    from vot.reasoner import Reasoner

    check_names(policy, sketcher, encoder)
    task = tasks.get(task)
    the_policy = SimulatedPolicy(error_rate=error_rate, seed=seed)
    the_sketcher, backend = build_sketcher(task, sketcher, device)
    the_encoder = PixelPatchEncoder() if encoder == "pixel" else None
    generator = torch.Generator(device).manual_seed(seed) if the_sketcher.produces_images else None
    reasoner = Reasoner(the_policy, the_sketcher, the_encoder, max_steps=max_steps, sketch_steps=sketch_steps,
                        generator=generator)
    reasoner.attention_backend = backend
    return reasoner
