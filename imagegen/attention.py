"""Choose the attention backend: SDPA by default; xformers only when a tiny CUDA forward through it
succeeds (its wheels load only with the torch build they were made for, while
``is_xformers_available()`` may still say True). The chosen backend is reported in summaries."""
from __future__ import annotations

import torch


def has_attention(model: torch.nn.Module) -> bool:
    from diffusers.models.attention_processor import Attention

    return any(isinstance(m, Attention) for m in model.modules())


def xformers_works() -> bool:
    """A real forward through xformers' memory-efficient attention on CUDA."""
    if not torch.cuda.is_available():
        return False
    try:
        import xformers.ops

        q = torch.randn(1, 4, 1, 8, device="cuda", dtype=torch.float16)  # (B, T, H, D)
        xformers.ops.memory_efficient_attention(q, q, q)
        torch.cuda.synchronize()
        return True
    except Exception:  # noqa: BLE001 - any failure to import or run means: do not use it
        return False


def configure_attention(model: torch.nn.Module, prefer_xformers: bool = True) -> str:
    """Set ``model``'s attention processors and return the backend used: ``xformers``, ``sdpa`` or
    ``none`` (the model has no attention layers)."""
    if not has_attention(model):
        return "none"
    if prefer_xformers and next(model.parameters()).is_cuda and xformers_works():
        try:
            for module in model.modules():
                if hasattr(module, "set_use_memory_efficient_attention_xformers"):
                    module.set_use_memory_efficient_attention_xformers(True)
            return "xformers"
        except Exception:  # noqa: BLE001 - fall back below
            pass
    from diffusers.models.attention_processor import Attention, AttnProcessor2_0

    for module in model.modules():
        if isinstance(module, Attention):
            module.set_processor(AttnProcessor2_0())
    return "sdpa"
