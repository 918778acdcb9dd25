"""`SketchPipeline`: a diffusers pipeline that imagines the next state sketch.

The UNet (``UNet2DModel``) sees the noisy target concatenated with the previous sketch
(InstructPix2Pix-style), both folded p x p pixels per position (``pixel_unshuffle``, so 6p^2 input
channels), and the thought through an identity class embedding: the text encoder's projected
embedding is added to the timestep embedding. It predicts the clean image
(``prediction_type="sample"``), which suits flat-colour sketches and few-step DDIM sampling.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DiffusionPipeline, UNet2DModel
from PIL import Image

from imagegen.base import check_sketch_inputs
from imagegen.text import encode_text


def images_to_tensor(images: Sequence[Image.Image]) -> torch.Tensor:
    """PIL RGB images of one size -> (B, 3, H, W) in [-1, 1]."""
    array = np.stack([np.asarray(image.convert("RGB"), dtype=np.float32) for image in images]) / 127.5 - 1.0  # (B, H, W, 3)
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()


def tensor_to_images(tensor: torch.Tensor) -> list[Image.Image]:
    """(B, 3, H, W) in [-1, 1] -> PIL RGB images."""
    array = ((tensor.float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(a, "RGB") for a in array]


def patch_size(unet) -> int:
    """Pixels per UNet position along each side: the UNet sees 2 x 3 x p x p channels per position."""
    p = int(round((unet.config.out_channels / 3) ** 0.5))
    if 3 * p * p != unet.config.out_channels or unet.config.in_channels != 2 * unet.config.out_channels:
        raise ValueError(f"UNet channels ({unet.config.in_channels} in, {unet.config.out_channels} out) are not 6p^2 / 3p^2")
    return p


def predict_clean(unet, noisy: torch.Tensor, prev: torch.Tensor, t, condition: torch.Tensor) -> torch.Tensor:
    """The UNet's clean-sketch prediction in pixel space. ``noisy``, ``prev``: (B, 3, H, W);
    ``condition``: (B, D). Pixels are folded into channels (pixel_unshuffle by the patch size) so
    the UNet runs at 1/p resolution, which is what makes CPU training feasible."""
    p = patch_size(unet)
    model_input = torch.cat([F.pixel_unshuffle(noisy, p), F.pixel_unshuffle(prev, p)], dim=1)  # (B, 6p^2, H/p, W/p)
    return F.pixel_shuffle(unet(model_input, t, class_labels=condition).sample, p)  # (B, 3, H, W)


class SketchPipeline(DiffusionPipeline):
    """``pipe(prev_images, thoughts, num_inference_steps=10, generator=g) -> list[PIL.Image]``.

    Also a `SketchGenerator` (``sketch(prev_images, thoughts, steps=…, generator=…)``). Batches may
    mix image sizes; each size is denoised as its own batch. Reload with
    ``SketchPipeline.from_pretrained(path)``."""

    model_cpu_offload_seq = "text_encoder->unet"
    label = "sketch-pipeline"
    produces_images = True

    def __init__(self, unet: UNet2DModel, scheduler, text_encoder, tokenizer, default_steps: int = 10,
                 output_levels: int = 0):
        super().__init__()
        if isinstance(output_levels, bool) or not isinstance(output_levels, int) or output_levels < 0 or output_levels == 1:
            raise ValueError(f"output_levels must be 0 (off) or at least 2, got {output_levels!r}")
        self.register_modules(unet=unet, scheduler=scheduler, text_encoder=text_encoder, tokenizer=tokenizer)
        self.register_to_config(default_steps=default_steps, output_levels=output_levels)

    @property
    def default_steps(self) -> int:
        """Denoising steps used when the caller does not say (saved with the pipeline)."""
        return int(self.config.default_steps)

    @property
    def output_levels(self) -> int:
        """Flat-colour snap of the output (saved with the pipeline): each channel is rounded to the
        nearest of this many evenly spaced levels (3: 0, 0.5, 1, the lattice every task palette is
        on); 0 leaves the denoised pixels as they are. Without it, drift below what `Task.read`
        notices accumulates over a rollout until a later step is misdrawn."""
        return int(self.config.get("output_levels", 0))


    def sketch(self, prev_images, thoughts, *, steps=None, generator=None):
        return self(prev_images, thoughts, num_inference_steps=steps or self.default_steps, generator=generator)

    @torch.no_grad()
    def __call__(self, prev_images: Sequence[Image.Image], thoughts: Sequence[str], num_inference_steps: int = 10,
                 generator: torch.Generator | None = None) -> list[Image.Image]:
        check_sketch_inputs(prev_images, thoughts)
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be at least 1, got {num_inference_steps}")
        factor = patch_size(self.unet) * 2 ** (len(self.unet.config.block_out_channels) - 1)
        for i, image in enumerate(prev_images):
            if image.mode != "RGB":
                raise ValueError(f"prev_images[{i}] has mode {image.mode}; expected RGB")
            if image.width % factor or image.height % factor:
                raise ValueError(f"prev_images[{i}] is {image.width}x{image.height}; sides must be multiples of {factor}")
        if isinstance(generator, (list, tuple)):
            if len(generator) != len(prev_images):
                raise ValueError(f"got {len(generator)} generators for {len(prev_images)} images")
            generators = list(generator)
        else:
            generators = [generator] * len(prev_images)
        out: list[Image.Image | None] = [None] * len(prev_images)
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(prev_images):
            by_size.setdefault(image.size, []).append(i)
        for indices in by_size.values():
            images = self._denoise([prev_images[i] for i in indices], [thoughts[i] for i in indices],
                                   num_inference_steps, [generators[i] for i in indices])
            for i, image in zip(indices, images):
                out[i] = image
        return out

    def _denoise(self, prev_images, thoughts, steps, generators) -> list[Image.Image]:
        device, dtype = self.unet.device, self.unet.dtype
        prev = images_to_tensor(prev_images).to(device=device, dtype=dtype)  # (B, 3, H, W)
        condition = encode_text(self.tokenizer, self.text_encoder, list(thoughts), device).to(dtype)  # (B, D)
        shape = (1,) + tuple(prev.shape[1:])
        noise = [torch.randn(shape, generator=g, device=g.device if g is not None else "cpu") for g in generators]
        sample = (torch.cat(noise) * self.scheduler.init_noise_sigma).to(device=device, dtype=dtype)  # (B, 3, H, W)
        generator = generators[0] if len(set(map(id, generators))) == 1 else None
        self.scheduler.set_timesteps(steps, device=device)
        for t in self.scheduler.timesteps:
            prediction = predict_clean(self.unet, self.scheduler.scale_model_input(sample, t), prev, t, condition)  # (B, 3, H, W)
            sample = self.scheduler.step(prediction, t, sample, generator=generator).prev_sample
        if self.output_levels:
            steps_between = self.output_levels - 1
            sample = ((sample.float().clamp(-1, 1) + 1) / 2 * steps_between).round() / steps_between * 2 - 1  # (B, 3, H, W)
        return tensor_to_images(sample)
