"""Use a local diffusers InstructPix2Pix-style pipeline directory as a `SketchGenerator`."""
from __future__ import annotations

from pathlib import Path

import torch

from imagegen.base import check_sketch_inputs


class LocalDiffusersSketcher:
    """Wraps ``StableDiffusionInstructPix2PixPipeline.from_pretrained(path)`` (any local directory in
    that layout, never the hub): the previous sketch is the input image, the thought the edit
    instruction. Outputs are resized back to each input's size (latent pipelines work at multiples of
    8). bf16 on CUDA, fp32 on CPU."""

    produces_images = True

    def __init__(self, path: str | Path, device: str = "auto", guidance_scale: float = 1.0,
                 image_guidance_scale: float = 1.0, default_steps: int = 20):
        from diffusers import StableDiffusionInstructPix2PixPipeline

        path = Path(path)
        if not (path / "model_index.json").is_file():
            raise ValueError(f"{path} is not a diffusers pipeline directory (no model_index.json)")
        device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        self.pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(
            path, dtype=dtype, local_files_only=True, safety_checker=None, requires_safety_checker=False)
        self.pipe.to(device)
        self.pipe.set_progress_bar_config(disable=True)
        self.attention_backend = "diffusers default"
        self.label = f"local:{path.name}"
        self.guidance_scale, self.image_guidance_scale, self.default_steps = guidance_scale, image_guidance_scale, default_steps

    def sketch(self, prev_images, thoughts, *, steps=None, generator=None):
        check_sketch_inputs(prev_images, thoughts)
        if isinstance(generator, (list, tuple)) and len(generator) != len(prev_images):
            raise ValueError(f"got {len(generator)} generators for {len(prev_images)} images")
        # The diffusers pipeline resizes a whole batch to its first image's size, so denoise each size
        # as its own batch (as `SketchPipeline` does).
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(prev_images):
            by_size.setdefault(image.size, []).append(i)
        out = [None] * len(prev_images)
        for indices in by_size.values():
            images = self.pipe(prompt=[thoughts[i] for i in indices],
                               image=[prev_images[i].convert("RGB") for i in indices],
                               num_inference_steps=steps or self.default_steps, guidance_scale=self.guidance_scale,
                               image_guidance_scale=self.image_guidance_scale,
                               generator=[generator[i] for i in indices] if isinstance(generator, (list, tuple)) else generator).images
            for i, image in zip(indices, images):
                size = prev_images[i].size
                out[i] = image.resize(size) if image.size != size else image
        return out
