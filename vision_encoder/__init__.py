"""Vision encoders: sketches -> vision tokens (B, T, D) for the policy's context."""
from vision_encoder.base import Encoder, PixelPatchEncoder
from vision_encoder.hf_tower import HFVisionTower
from vision_encoder.patch import PatchEncoder, images_to_pixels, vision_config
from vision_encoder.vq import VQEncoder

__all__ = ["Encoder", "HFVisionTower", "PatchEncoder", "PixelPatchEncoder", "VQEncoder", "images_to_pixels",
           "vision_config"]
