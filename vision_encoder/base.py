"""The Encoder protocol and a parameter-free reference encoder."""
from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np
import torch
from PIL import Image


@runtime_checkable
class Encoder(Protocol):
    """``encode(images) -> Tensor[B, T, D]``, batched; ``dim`` is D."""

    dim: int

    def encode(self, images: Sequence[Image.Image]) -> torch.Tensor: ...


class PixelPatchEncoder:
    """REFERENCE: no learning. Cuts each image into ``patch`` x ``patch`` pixel patches and flattens
    them: (B, T, patch*patch*3) with T = (H/patch)*(W/patch). All images must share one size."""

    def __init__(self, patch: int = 8):
        self.patch = patch
        self.dim = patch * patch * 3

    def encode(self, images: Sequence[Image.Image]) -> torch.Tensor:
        if not images:
            return torch.zeros(0, 0, self.dim)
        sizes = {image.size for image in images}
        if len(sizes) != 1:
            raise ValueError(f"images in one batch must share a size, got {sorted(sizes)}")
        width, height = sizes.pop()
        if width % self.patch or height % self.patch:
            raise ValueError(f"image sides must be multiples of {self.patch}, got {width}x{height}")
        pixels = torch.from_numpy(np.stack([np.asarray(i.convert("RGB"), dtype=np.float32) / 255.0 for i in images]))  # (B, H, W, 3)
        p = self.patch
        patches = pixels.reshape(len(images), height // p, p, width // p, p, 3).permute(0, 1, 3, 2, 4, 5)  # (B, h, w, p, p, 3)
        return patches.reshape(len(images), (height // p) * (width // p), self.dim)  # (B, T, D)
