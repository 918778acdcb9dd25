"""`PatchEncoder`: a small ViT or SigLIP vision transformer built from a transformers config, plus
a LLaVA-style MLP projector to the policy's width. Trained jointly with the policy.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

VISION_KINDS = ("vit", "siglip")


def images_to_pixels(images: Sequence[Image.Image]) -> torch.Tensor:
    """PIL images of one size -> float pixels in [-1, 1], (B, 3, H, W)."""
    sizes = {image.size for image in images}
    if len(sizes) != 1:
        raise ValueError(f"images in one batch must share a size, got {sorted(sizes)}")
    arrays = np.stack([np.asarray(image.convert("RGB"), dtype=np.float32) for image in images])  # (B, H, W, 3)
    return torch.from_numpy(arrays).permute(0, 3, 1, 2) / 127.5 - 1.0  # (B, 3, H, W)


def vision_config(kind: str, *, hidden_size: int = 64, layers: int = 1, heads: int = 4, patch_size: int = 8,
                  image_size: int = 64):
    """A transformers ViT or SigLIP vision config of the given shape."""
    if kind == "vit":
        from transformers import ViTConfig

        return ViTConfig(hidden_size=hidden_size, num_hidden_layers=layers, num_attention_heads=heads,
                         intermediate_size=hidden_size * 2, image_size=image_size, patch_size=patch_size,
                         num_channels=3)
    if kind == "siglip":
        from transformers import SiglipVisionConfig

        return SiglipVisionConfig(hidden_size=hidden_size, num_hidden_layers=layers, num_attention_heads=heads,
                                  intermediate_size=hidden_size * 2, image_size=image_size, patch_size=patch_size,
                                  num_channels=3, vision_use_head=False)
    raise ValueError(f"unknown vision model kind {kind!r}; available: {', '.join(VISION_KINDS)}")


class ConvStem(nn.Sequential):
    """A convolutional stem in place of the one-convolution patch embedding ("early convolutions
    help transformers see better", Xiao et al. 2021): a ``stem`` x ``stem`` convolution reads each
    small cell, then a ``patch/stem`` convolution merges cells into one patch token.

    With ``context``, a 3x3 convolution over the patch grid adds each token's eight neighbouring
    patches to it (residually, zero-initialised: a warm start from a stem without it computes the
    same function at step 0). A planning move compares the agent's cell with its four neighbours;
    without this the decoder must gather them from tokens ``1`` and ``width`` apart, an offset that
    changes with the room size."""

    def __init__(self, stem: int, patch: int, width: int, context: bool = False):
        if patch % stem:
            raise ValueError(f"the stem size {stem} must divide the patch size {patch}")
        layers = [nn.Conv2d(3, width, stem, stem), nn.GELU(), nn.Conv2d(width, width, patch // stem, patch // stem)]
        if context:
            neighbours = nn.Conv2d(width, width, 3, padding=1)
            nn.init.zeros_(neighbours.weight)
            nn.init.zeros_(neighbours.bias)
            layers.append(neighbours)
        super().__init__(*layers)
        self.context = context

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, width, H / patch, W / patch)."""
        tokens = self[2](self[1](self[0](pixels)))  # (B, width, h, w)
        return tokens + self[3](tokens) if self.context else tokens

    @property
    def weight(self) -> torch.Tensor:  # transformers reads the patch embedding's dtype from here
        return self[2].weight


class PatchEncoder(nn.Module):
    """Vision transformer + projector: ``encode(images) -> (B, T, dim)`` with one token per patch.

    Args:
        config: a ``ViTConfig`` or ``SiglipVisionConfig`` (the kind is read from ``config.model_type``).
        dim: the policy's hidden size; a two-layer MLP projects the vision width to it.
        pad: pad images on the bottom and right to a multiple of the patch size (with 0, mid grey)
            instead of refusing them; lets a patch cover several task cells for shorter contexts.
        stem: if given, a `ConvStem` with ``stem``-pixel cells replaces the patch embedding (on
            the 8-px task renders a 16-px token learned a colour probe to 97% in 100 steps with a
            stem of 8, against 72% with the plain patch convolution).
        context: give the stem its neighbourhood convolution (`ConvStem`); needs ``stem``.

    Images of any size that is a multiple of ``patch_size`` are accepted: position embeddings are
    interpolated from the configured ``image_size`` grid. The ViT class token is dropped, so T is
    the number of patches, (H / patch) * (W / patch), in row-major order.
    """

    def __init__(self, config, dim: int, *, pad: bool = False, stem: int | None = None, context: bool = False):
        super().__init__()
        from transformers import SiglipVisionModel, ViTModel

        if config.model_type == "vit":
            self.vision = ViTModel(config, add_pooling_layer=False)
        elif config.model_type in ("siglip_vision_model", "siglip"):
            self.vision = SiglipVisionModel(config)
        else:
            raise ValueError(f"PatchEncoder needs a ViT or SigLIP vision config, got {config.model_type!r}")
        self.kind = "vit" if config.model_type == "vit" else "siglip"
        if context and stem is None:
            raise ValueError("the neighbourhood convolution (context) is part of the convolutional stem: give a stem size")
        if stem is not None:
            embeddings = self.vision.embeddings
            stem_module = ConvStem(stem, config.patch_size, config.hidden_size, context=context)
            if self.kind == "vit":
                embeddings.patch_embeddings.projection = stem_module
            else:
                embeddings.patch_embedding = stem_module
        self.patch = config.patch_size
        self.dim, self.pad = dim, pad
        width = config.hidden_size
        self.projector = nn.Sequential(nn.Linear(width, dim), nn.GELU(), nn.Linear(dim, dim))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, T, dim)."""
        return self.projector(self.features(pixels))  # (B, T, dim)

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> the vision model's patch features before the projector, (B, T, width)."""
        height, width = pixels.shape[-2:]
        if self.pad:
            pixels = nn.functional.pad(pixels, (0, -width % self.patch, 0, -height % self.patch))
            height, width = pixels.shape[-2:]
        if height % self.patch or width % self.patch:
            raise ValueError(f"image sides must be multiples of the patch size {self.patch}, got {width}x{height}")
        dtype = next(self.vision.parameters()).dtype
        hidden = self.vision(pixel_values=pixels.to(dtype), interpolate_pos_encoding=True).last_hidden_state
        if self.kind == "vit":
            hidden = hidden[:, 1:]  # drop the class token: (B, T, width)
        return hidden

    @torch.no_grad()
    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels already on a device, (B, 3, H, W) in [-1, 1] -> vision tokens (B, T, dim)."""
        return self(pixels.to(self.device))

    @torch.no_grad()
    def encode(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """PIL images of one size -> vision tokens (B, T, dim)."""
        if not images:
            return torch.zeros(0, 0, self.dim)
        return self(images_to_pixels(images).to(self.device))
