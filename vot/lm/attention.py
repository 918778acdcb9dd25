"""The policy decoder's attention: transformers' SDPA, except for one query token per row on CPU.

A decode step attends one query per row over the row's cached keys. On CPU, torch's fused SDPA kernel
takes 1.8x as long there as a plain matmul-softmax-matmul over contiguous keys (batch 64, 4 heads of
32, 282 positions, 1 thread: 1.11 against 0.62 ms; BENCHMARKS.md, session 21), so `decode_attention`
runs that for such calls and hands every other call (prefill, observe, training, CUDA) to
transformers' ``sdpa`` unchanged. `vot.lm.kv.DecodeScratch` gives the decode steps contiguous keys.

Registered in transformers' `AttentionInterface` (with sdpa's mask builder in `AttentionMaskInterface`)
as ``ATTENTION`` (``"vot_decode"``); `use_decode_attention` switches a decoder to it.
"""
from __future__ import annotations

import torch
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

ATTENTION = "vot_decode"


def decode_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                     **kwargs) -> tuple[torch.Tensor, None]:
    """query (B, H, 1, d), key and value (B, H_kv, K, d), attention_mask (B, 1, 1, K) additive or None
    -> (B, 1, H, d), None: the math path for single-query CPU calls over contiguous keys, else SDPA."""
    if (query.shape[2] != 1 or query.device.type != "cpu" or module.training or dropout
            or not (key.is_contiguous() and value.is_contiguous())
            or (attention_mask is not None and (attention_mask.dtype == torch.bool or attention_mask.shape[1] != 1))):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    batch, heads, _, dim = query.shape
    kv_heads = key.shape[1]
    scale = scaling if scaling is not None else dim ** -0.5
    grouped = query.reshape(batch, kv_heads, heads // kv_heads, dim)  # (B, H_kv, G, d): head h reads kv head h // G
    scores = torch.matmul(grouped, key.transpose(-1, -2)).mul_(scale)  # (B, H_kv, G, K)
    if attention_mask is not None:
        scores.add_(attention_mask)  # (B, 1, 1, K) broadcasts over heads
    out = torch.matmul(scores.softmax(-1, dtype=torch.float32).to(value.dtype), value)  # (B, H_kv, G, d)
    return out.reshape(batch, heads, 1, dim).transpose(1, 2).contiguous(), None


AttentionInterface.register(ATTENTION, decode_attention)
AttentionMaskInterface.register(ATTENTION, sdpa_mask)  # a 2-D mask (training) becomes what sdpa gets


def use_decode_attention(decoder) -> None:
    """Switch a transformers decoder (Llama, Qwen2) to `decode_attention`; it computes what ``sdpa`` does."""
    decoder.config._attn_implementation = ATTENTION
