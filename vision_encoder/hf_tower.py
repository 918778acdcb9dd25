"""`HFVisionTower`: a pretrained CLIP or SigLIP vision tower loaded from a local directory.

The tower is frozen; an optional linear projector (randomly initialised, to be trained) maps its
width to the policy's hidden size, LLaVA-style.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from PIL import Image
from torch import nn

# model_type in config.json -> transformers vision model class name
TOWER_TYPES = {
    "clip": "CLIPVisionModel",
    "clip_vision_model": "CLIPVisionModel",
    "siglip": "SiglipVisionModel",
    "siglip_vision_model": "SiglipVisionModel",
}


class HFVisionTower(nn.Module):
    """A local CLIP / SigLIP vision model and its image processor: ``encode(images) -> (B, T, dim)``.

    Args:
        path: a directory written by ``save_pretrained`` holding the model (``config.json`` + weights)
            and its image processor (``preprocessor_config.json``). A full CLIP / SigLIP checkpoint
            (``model_type`` ``clip`` / ``siglip``) works too: only its vision half is loaded. Nothing
            is downloaded (``local_files_only=True``).
        dim: output width. ``None`` returns the tower's hidden states as they are (``dim`` is then the
            tower width); otherwise an ``nn.Linear(width, dim)`` projector maps them to ``dim``. The
            projector is randomly initialised and meant to be trained with the policy.
        layer: which entry of the model's ``hidden_states`` to return: 0 is the patch embeddings,
            ``i`` the output of encoder layer ``i``, -1 the last layer (taken before SigLIP's
            ``post_layernorm``; for CLIP it equals ``last_hidden_state``). LLaVA uses -2.
        device: where the tower and projector live.

    Images are resized / cropped / normalised by the image processor, so they may have any size
    (mixed sizes in one batch are fine) and T is fixed by the processor's output size:
    (S / patch)^2 patch tokens in row-major order. CLIP's class token is dropped.

    The tower's weights are frozen (``requires_grad=False``) and it stays in eval mode; only the
    projector trains. ``forward(pixel_values)`` keeps the autograd graph for the projector,
    ``encode(images)`` runs without gradients.
    """

    def __init__(self, path: str | Path, *, dim: int | None = None, layer: int = -1, device: str | torch.device = "cpu"):
        super().__init__()
        import transformers
        from transformers import AutoConfig, AutoImageProcessor

        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"vision tower directory not found: {str(path)!r}")
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"no config.json in vision tower directory {str(path)!r}; "
                                    "save the model there with save_pretrained")
        config = AutoConfig.from_pretrained(path, local_files_only=True)
        model_type = config.model_type
        if model_type not in TOWER_TYPES:
            raise ValueError(f"unsupported vision tower model type {model_type!r} in {str(path)!r}; "
                             f"supported: {', '.join(TOWER_TYPES)}")
        if not (path / "preprocessor_config.json").is_file():
            raise FileNotFoundError(f"no image processor (preprocessor_config.json) in {str(path)!r}; "
                                    "save the matching image processor there with save_pretrained")

        model_class = getattr(transformers, TOWER_TYPES[model_type])
        self.vision = model_class.from_pretrained(path, local_files_only=True)
        self.vision.requires_grad_(False)
        self.vision.eval()
        self.processor = AutoImageProcessor.from_pretrained(path, local_files_only=True)

        vision_config = self.vision.config  # the vision half, also for a full CLIP / SigLIP checkpoint
        self.kind = "clip" if model_type.startswith("clip") else "siglip"
        self.path = path
        self.width = vision_config.hidden_size
        self.patch = vision_config.patch_size
        self.image_size = vision_config.image_size
        num_states = vision_config.num_hidden_layers + 1  # embeddings + one per encoder layer
        if not -num_states <= layer < num_states:
            raise ValueError(f"layer {layer} out of range for a tower with {num_states} hidden states "
                             f"(embeddings + {num_states - 1} layers)")
        self.layer = layer
        self.dim = self.width if dim is None else dim
        self.projector: nn.Module = nn.Identity() if dim is None else nn.Linear(self.width, dim)
        self.to(device)

    @property
    def device(self) -> torch.device:
        return next(self.vision.parameters()).device

    def train(self, mode: bool = True) -> "HFVisionTower":
        """Like ``nn.Module.train``, but the frozen tower stays in eval mode."""
        super().train(mode)
        self.vision.eval()
        return self

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """PIL images -> the image processor's pixel values (B, 3, S, S) on the tower's device."""
        pixels = self.processor(images=[image.convert("RGB") for image in images], return_tensors="pt")["pixel_values"]
        return pixels.to(self.device, dtype=self.vision.dtype)  # (B, 3, S, S)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Processor pixel values (B, 3, S, S) -> tokens (B, T, dim); gradients reach the projector."""
        size = tuple(pixel_values.shape[-2:])
        interpolate = size != (self.image_size, self.image_size)
        outputs = self.vision(pixel_values=pixel_values.to(self.vision.dtype), output_hidden_states=True,
                              interpolate_pos_encoding=interpolate)
        hidden = outputs.hidden_states[self.layer]  # (B, T(+1), width)
        if self.kind == "clip":
            hidden = hidden[:, 1:]  # drop the class token: (B, T, width)
        if isinstance(self.projector, nn.Linear):
            hidden = self.projector(hidden.to(self.projector.weight.dtype))  # (B, T, dim)
        return hidden  # (B, T, D)

    @torch.no_grad()
    def encode(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """PIL images -> vision tokens (B, T, dim), batched, without gradients."""
        if not images:
            return torch.zeros(0, 0, self.dim)
        return self(self.preprocess(images))  # (B, T, D)
