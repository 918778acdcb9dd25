"""Compute in one unit: policy tokens plus denoising steps, each weighted by its cost.

`CostModel.measured` reads the weights off a run (seconds per token and per denoising step, from
the `Compute.policy_seconds` / `sketch_seconds` every chain records), so strategies can be compared
at equal compute. Strategies that decide by cost while they run (``compute_optimal``) take a fixed
`CostModel` from their config instead, so their choices never depend on the machine's timing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from vot.chain import Compute


@dataclass(frozen=True)
class CostModel:
    """``cost(compute) = token * policy_tokens + denoising_step * denoising_steps``."""

    token: float = 1.0
    denoising_step: float = 1.0

    def cost(self, compute: Compute) -> float:
        return self.token * compute.policy_tokens + self.denoising_step * compute.denoising_steps

    @classmethod
    def measured(cls, computes: Iterable[Compute]) -> "CostModel":
        """Seconds per policy token and per denoising step over ``computes`` (a denoising step
        carries its share of the sketch, encode and observe time; 0 when nothing was denoised)."""
        tokens = steps = 0
        policy_seconds = sketch_seconds = 0.0
        for c in computes:
            tokens += c.policy_tokens
            steps += c.denoising_steps
            policy_seconds += c.policy_seconds
            sketch_seconds += c.sketch_seconds
        return cls(policy_seconds / tokens if tokens else 0.0, sketch_seconds / steps if steps else 0.0)

    def to_json(self) -> dict:
        return {"seconds_per_token": self.token, "seconds_per_denoising_step": self.denoising_step}
