"""Policy sizes. ``tiny`` trains on 2 CPU cores in well under an hour; ``base`` is for a GPU."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PolicyPreset:
    shape: dict = field(default_factory=dict)  # `vot.lm.model.PolicyShape` fields
    batch_size: int = 32
    learning_rate: float = 1e-3
    steps: int = 2000
    warmup: int = 100
    problems_per_size: int = 2000


PRESETS = {
    "tiny": PolicyPreset(dict(hidden=128, layers=3, heads=4, kv_heads=4, vision_hidden=64, vision_layers=1,
                              vision_heads=4), 16, 1.5e-3, 2500, 100, 1500),
    "base": PolicyPreset(dict(hidden=256, layers=6, heads=8, kv_heads=4, vision_hidden=192, vision_layers=2,
                              vision_heads=4), 128, 5e-4, 8000, 300, 8000),
}


def get_policy_preset(name: str) -> PolicyPreset:
    if name not in PRESETS:
        raise ValueError(f"unknown policy preset {name!r}; available: {', '.join(PRESETS)}")
    return PRESETS[name]
