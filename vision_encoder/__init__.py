"""Vision encoders: sketches -> vision tokens (B, T, D) for the policy's context."""
from vision_encoder.base import Encoder, PixelPatchEncoder

__all__ = ["Encoder", "PixelPatchEncoder"]
