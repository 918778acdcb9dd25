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
    attention_backend = "default"  # diffusers' own processors until `load_sketcher` chooses one

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
        for i, image in enumerate(prev_images):
            if image.mode != "RGB":
                raise ValueError(f"prev_images[{i}] has mode {image.mode}; expected RGB")
        out: list[Image.Image | None] = [None] * len(prev_images)
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(prev_images):
            by_size.setdefault(image.size, []).append(i)
        generators = self._generators(generator, len(prev_images))
        for indices in by_size.values():
            prev = images_to_tensor([prev_images[i] for i in indices])
            drawn = self.sketch_pixels(prev, [thoughts[i] for i in indices], steps=num_inference_steps,
                                       generator=[generators[i] for i in indices])
            for i, image in zip(indices, tensor_to_images(drawn)):
                out[i] = image
        return out

    @torch.no_grad()
    def sketch_pixels(self, prev: torch.Tensor, thoughts: Sequence[str], *, steps: int | None = None,
                      generator=None) -> torch.Tensor:
        """The tensor form of `sketch`, for a loop that keeps sketches on the device: ``prev``
        (B, 3, H, W) in [-1, 1] (one size) -> the next sketches, (B, 3, H, W) on the UNet's device,
        on the 8-bit grid (what the PIL form would read back), so both forms give the same pixels."""
        steps = steps or self.default_steps
        if steps < 1:
            raise ValueError(f"num_inference_steps must be at least 1, got {steps}")
        if prev.ndim != 4 or prev.shape[1] != 3:
            raise ValueError(f"prev must be (B, 3, H, W), got {tuple(prev.shape)}")
        if len(thoughts) != len(prev):
            raise ValueError(f"got {len(prev)} previous images but {len(thoughts)} thoughts")
        for i, thought in enumerate(thoughts):
            if not isinstance(thought, str) or not thought.strip():
                raise ValueError(f"thoughts[{i}] is empty")
        factor = patch_size(self.unet) * 2 ** (len(self.unet.config.block_out_channels) - 1)
        height, width = prev.shape[-2:]
        if width % factor or height % factor:
            raise ValueError(f"prev_images are {width}x{height}; sides must be multiples of {factor}")
        sample = self._denoise(prev, list(thoughts), steps, self._generators(generator, len(prev)))
        return ((sample.float().clamp(-1, 1) + 1.0) * 127.5).round() / 127.5 - 1.0  # (B, 3, H, W), 8-bit grid

    @staticmethod
    def _generators(generator, count: int) -> list:
        if isinstance(generator, (list, tuple)):
            if len(generator) != count:
                raise ValueError(f"got {len(generator)} generators for {count} images")
            return list(generator)
        return [generator] * count

    def _denoise(self, prev: torch.Tensor, thoughts, steps, generators) -> torch.Tensor:
        """prev (B, 3, H, W) in [-1, 1] -> denoised (B, 3, H, W) on the UNet's device."""
        device, dtype = self.unet.device, self.unet.dtype
        prev = prev.to(device=device, dtype=dtype)  # (B, 3, H, W)
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
        return sample
