"""Model sizes for the sketcher. ``tiny`` trains on 2 CPU cores; ``base`` is for a GPU."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SketcherPreset:
    patch: int  # pixels folded into channels per side (the UNet runs at 1/patch resolution)
    block_out_channels: tuple[int, ...]
    layers_per_block: int
    attention: bool  # self-attention in the lowest-resolution blocks
    text_hidden: int
    text_layers: int
    text_heads: int
    batch_size: int
    learning_rate: float
    steps: int
    warmup: int

    @property
    def embedding_dim(self) -> int:
        return self.block_out_channels[0] * 4  # UNet2DModel's time embedding width


PRESETS = {
    "tiny": SketcherPreset(4, (32, 64), 1, False, 64, 2, 2, 64, 2e-3, 4000, 200),
    "base": SketcherPreset(2, (64, 128, 128), 2, True, 128, 2, 4, 256, 1e-3, 20000, 500),
}


def get_preset(name: str) -> SketcherPreset:
    if name not in PRESETS:
        raise ValueError(f"unknown sketcher preset {name!r}; available: {', '.join(PRESETS)}")
    return PRESETS[name]
