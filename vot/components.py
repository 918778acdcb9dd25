"""Build the loop's components by name (for the CLI and bundles). Reference components say so."""
from __future__ import annotations

import tasks

POLICIES = ("simulated",)
SKETCHERS = ("oracle", "blank")
ENCODERS = ("pixel", "none")
REFERENCE = {"simulated", "oracle", "blank", "pixel"}


def check_names(policy: str, sketcher: str, encoder: str) -> None:
    for kind, name, known in (("policy", policy, POLICIES), ("sketcher", sketcher, SKETCHERS), ("encoder", encoder, ENCODERS)):
        if name not in known:
            raise ValueError(f"unknown {kind} {name!r}; available: {', '.join(known)}")


def build_reasoner(task: str, *, policy: str = "simulated", sketcher: str = "oracle", encoder: str = "pixel",
                   error_rate: float = 0.3, seed: int = 0, max_steps: int = 64):
    """A `Reasoner` from component names."""
    from imagegen import BlankSketcher, OracleSketcher
    from vision_encoder import PixelPatchEncoder
    from vot.policy import SimulatedPolicy
    from vot.reasoner import Reasoner

    check_names(policy, sketcher, encoder)
    task = tasks.get(task)
    the_policy = SimulatedPolicy(error_rate=error_rate, seed=seed)
    the_sketcher = OracleSketcher(task) if sketcher == "oracle" else BlankSketcher()
    the_encoder = PixelPatchEncoder() if encoder == "pixel" else None
    return Reasoner(the_policy, the_sketcher, the_encoder, max_steps=max_steps)
