"""Build the loop's components by name (for the CLI and bundles). Reference components say so.

Policies: ``simulated`` (reference), ``default`` (the shipped bundle of the task), a directory:
a bundle (``bundle.json``) or a saved policy (``policy.json``), or ``hf:PATH`` (a local Hugging Face
image-text-to-text checkpoint through `vot.hf_policy.HFPolicy`; it reads the sketches itself). Encoders: ``auto`` (the policy's own
vision encoder; ``pixel`` for the simulated policy), ``pixel`` (reference) or ``none``.
"""
from __future__ import annotations

from pathlib import Path

import tasks

POLICIES = ("simulated", "default")  # or a bundle / policy directory
SKETCHERS = ("oracle", "blank", "default")  # or a SketchPipeline directory
ENCODERS = ("auto", "pixel", "none")
REFERENCE = {"simulated", "oracle", "blank", "pixel"}


def _is_policy_dir(name: str) -> bool:
    return Path(name, "bundle.json").is_file() or Path(name, "policy.json").is_file()


def check_names(policy: str, sketcher: str, encoder: str) -> None:
    for kind, name, known in (("policy", policy, POLICIES), ("sketcher", sketcher, SKETCHERS), ("encoder", encoder, ENCODERS)):
        if kind == "sketcher" and Path(name, "model_index.json").is_file():
            continue
        if kind == "policy" and (_is_policy_dir(name) or name.startswith("hf:")):
            continue
        if name not in known:
            extra = {"sketcher": " or a SketchPipeline directory",
                     "policy": ", a bundle/policy directory or hf:PATH"}.get(kind, "")
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


def _learned_policy(task, name: str, device: str, seed: int):
    """(SmallPolicy, bundle sketcher name or None, bundle sketch steps) for ``default`` or a directory."""
    from vot.bundle import read_spec, resolve
    from vot.lm.policy import SmallPolicy

    if name == "default" or Path(name, "bundle.json").is_file():
        directory = resolve(task.id if name == "default" else name)
        spec = read_spec(directory)
        if spec.task != task.id:
            raise ValueError(f"bundle {directory} is for {spec.task}, not {task.id}")
        return SmallPolicy(directory / spec.policy, device=device, seed=seed, **spec.sampling), spec.sketcher, spec.sketch_steps
    policy = SmallPolicy(name, device=device, seed=seed)
    if policy.model.spec.task != task.id:
        raise ValueError(f"policy {name} was trained on {policy.model.spec.task}, not {task.id}")
    return policy, None, None


def build_reasoner(task: str, *, policy: str = "simulated", sketcher: str = "oracle", encoder: str = "pixel",
                   error_rate: float = 0.3, seed: int = 0, max_steps: int = 64, device: str = "cpu",
                   sketch_steps: int | None = None):
    """A `Reasoner` from component names; ``reasoner.attention_backend`` says what the sketcher uses.

    A text-only learned policy (cot, direct) gets the ``blank`` sketcher when ``sketcher`` is
    ``default`` and refuses an image-drawing one."""
    from vision_encoder import PixelPatchEncoder
    from vot.policy import SimulatedPolicy
    from vot.reasoner import Reasoner

    check_names(policy, sketcher, encoder)
    task = tasks.get(task)
    if policy == "simulated":
        the_policy = SimulatedPolicy(error_rate=error_rate, seed=seed)
        own_encoder = PixelPatchEncoder()
    elif policy.startswith("hf:"):
        from vot.hf_policy import HFPolicy

        the_policy, own_encoder = HFPolicy(policy[3:], seed=seed, device=device), None
        if encoder == "pixel":
            raise ValueError(f"policy {policy} reads images itself; use --encoder auto or none")
    else:
        the_policy, bundle_sketcher, bundle_steps = _learned_policy(task, policy, device, seed)
        own_encoder = the_policy.encoder
        mode = the_policy.model.spec.mode
        if sketcher == "default" and bundle_sketcher and bundle_sketcher != "default" and mode == "vot":
            sketcher = bundle_sketcher
        if mode != "vot":
            if sketcher not in ("default", "blank"):
                raise ValueError(f"policy {policy} reasons in text ({mode}); it takes --sketcher blank, not {sketcher!r}")
            sketcher = "blank"
        if sketch_steps is None:
            sketch_steps = bundle_steps
        if encoder == "pixel":
            raise ValueError(f"policy {policy} reads images with its own encoder; use --encoder auto")
    the_sketcher, backend = build_sketcher(task, sketcher, device)
    the_encoder = {"auto": own_encoder, "pixel": PixelPatchEncoder(), "none": None}[encoder]
    if not the_sketcher.produces_images:
        the_encoder = None
    reasoner = Reasoner(the_policy, the_sketcher, the_encoder, max_steps=max_steps, sketch_steps=sketch_steps,
                        seed=seed)
    reasoner.attention_backend = backend
    return reasoner
