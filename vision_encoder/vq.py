"""`VQEncoder`: discrete image tokens from a diffusers ``VQModel`` (VQ-VAE / VQGAN).

``encode_ids`` gives codebook indices (for a policy that reads or writes images as tokens),
``encode`` the matching codebook vectors, and ``decode_ids`` turns indices back into images.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from vision_encoder.patch import images_to_pixels

if TYPE_CHECKING:
    from diffusers import VQModel


class VQEncoder(nn.Module):
    """Images -> VQ codebook tokens through a diffusers ``VQModel``.

    Args:
        model_or_path: a ``VQModel`` instance, or a local directory written by its
            ``save_pretrained`` (loaded with ``local_files_only=True``).
        device: where the model lives.

    All images in one call must share a size whose sides are multiples of ``factor``
    (``2 ** (len(block_out_channels) - 1)``, the encoder's downsampling). The latent grid is then
    (H / factor, W / factor) and T = its area; tokens are in row-major order over that grid.

    Attributes:
        dim: D, the codebook vector width (``vq_embed_dim``).
        num_codes: the codebook size; ids lie in ``[0, num_codes)``.
        factor: pixels per latent cell along each side.
    """

    def __init__(self, model_or_path: "VQModel | str | Path", *, device: str | torch.device = "cpu"):
        super().__init__()
        from diffusers import VQModel

        if isinstance(model_or_path, VQModel):
            model = model_or_path
        elif isinstance(model_or_path, (str, Path)):
            path = Path(model_or_path)
            if not path.is_dir():
                raise FileNotFoundError(f"VQ model directory not found: {str(path)!r}")
            config_file = path / "config.json"
            if not config_file.is_file():
                raise FileNotFoundError(f"no config.json in VQ model directory {str(path)!r}; "
                                        "save the model there with save_pretrained")
            class_name = json.loads(config_file.read_text()).get("_class_name")
            if class_name != "VQModel":
                raise ValueError(f"{str(path)!r} holds a {class_name!r}, not a diffusers VQModel")
            model = VQModel.from_pretrained(path, local_files_only=True)
        else:
            raise TypeError(f"VQEncoder needs a diffusers VQModel or a directory, got {type(model_or_path).__name__}")
        self.model = model.to(device).eval()
        quantizer = self.model.quantize
        self.dim = quantizer.vq_embed_dim
        self.num_codes = quantizer.n_e
        self.factor = 2 ** (len(self.model.config.block_out_channels) - 1)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def grid(self, width: int, height: int) -> tuple[int, int]:
        """The latent grid (rows, cols) of a ``width`` x ``height`` image."""
        if width % self.factor or height % self.factor:
            raise ValueError(f"image sides must be multiples of {self.factor}, got {width}x{height}")
        return height // self.factor, width // self.factor

    @torch.no_grad()
    def encode_ids(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """PIL images of one size -> codebook indices, a LongTensor (B, T), row-major over the grid."""
        if not images:
            return torch.zeros(0, 0, dtype=torch.long)
        pixels = images_to_pixels(images)  # (B, 3, H, W), checks the sizes agree
        rows, cols = self.grid(pixels.shape[-1], pixels.shape[-2])
        pixels = pixels.to(self.device, dtype=self.model.dtype)
        latents = self.model.encode(pixels).latents  # (B, D, h, w)
        # VectorQuantizer returns (quant, loss, (perplexity, min_encodings, indices)); indices are
        # flat over (B, h, w) in row-major order
        _, _, (_, _, indices) = self.model.quantize(latents)
        return indices.reshape(len(images), rows * cols)  # (B, T)

    @torch.no_grad()
    def encode(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """PIL images of one size -> quantized codebook vectors (B, T, dim), the rows of ``encode_ids``."""
        if not images:
            return torch.zeros(0, 0, self.dim)
        ids = self.encode_ids(images)  # (B, T)
        return self.model.quantize.embedding(ids)  # (B, T, D)

    @torch.no_grad()
    def decode_ids(self, ids: torch.Tensor, grid: tuple[int, int]) -> list[Image.Image]:
        """Codebook indices (B, T) on a latent ``grid`` of (rows, cols) -> reconstructed PIL images.

        The images are ``cols * factor`` wide and ``rows * factor`` high.
        """
        ids = torch.as_tensor(ids, dtype=torch.long, device=self.device)
        if ids.dim() == 1:
            ids = ids[None]
        rows, cols = grid
        if ids.dim() != 2 or ids.shape[1] != rows * cols:
            raise ValueError(f"ids of shape {tuple(ids.shape)} do not fit a {rows}x{cols} grid (want (B, {rows * cols}))")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.num_codes):
            raise ValueError(f"ids must lie in [0, {self.num_codes}), got [{int(ids.min())}, {int(ids.max())}]")
        if not len(ids):
            return []
        shape = (len(ids), rows, cols, self.dim)  # (B, h, w, D)
        if self.model.config.lookup_from_codebook:
            decoded = self.model.decode(ids.reshape(-1), force_not_quantize=True, shape=shape).sample
        else:
            quant = self.model.quantize.get_codebook_entry(ids.reshape(-1), shape)  # (B, D, h, w)
            decoded = self.model.decode(quant, force_not_quantize=True).sample  # (B, 3, H, W)
        pixels = ((decoded.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        arrays = pixels.permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, 3)
        return [Image.fromarray(np.ascontiguousarray(array)) for array in arrays]
