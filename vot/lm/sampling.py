"""Token sampling for a whole batch on the device, each chain with its own randomness.

A chain's token number ``t`` (counted over its whole life, forks included) is drawn by the
Gumbel-max trick with noise from a counter-based hash of (chain key, t, vocabulary id): the draw
is a pure function of the chain's key and its own logits, so it does not depend on batching, on
order, on the device's RNG state or on what ran before. The chain key is `vot.keys.chain_seed`.

The hash is murmur3's 32-bit finaliser on int64 tensors, with multiplications split so that no
intermediate overflows 63 bits: the same bits on every device.
"""
from __future__ import annotations

from typing import Sequence

import torch

_MASK = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9


def _mul32(a: torch.Tensor, c: int) -> torch.Tensor:
    """(a * c) mod 2^32 for int64 ``a`` in [0, 2^32) without overflow."""
    low, high = c & 0xFFFF, c >> 16
    return (a * low + (((a * high) & 0xFFFF) << 16)) & _MASK


def _mix(h: torch.Tensor) -> torch.Tensor:
    """murmur3 fmix32 of int64 values in [0, 2^32)."""
    h = h ^ (h >> 16)
    h = _mul32(h, 0x85EBCA6B)
    h = h ^ (h >> 13)
    h = _mul32(h, 0xC2B2AE35)
    return h ^ (h >> 16)


def key_tensor(keys: Sequence[int], device) -> torch.Tensor:
    """62-bit chain keys -> (B, 2) int64 halves on ``device``."""
    return torch.tensor([[int(k) >> 31, int(k) & 0x7FFFFFFF] for k in keys], dtype=torch.long, device=device)


def uniforms(keys: torch.Tensor, counters: torch.Tensor, vocab: int) -> torch.Tensor:
    """keys (B, 2), counters (B,) int64 -> (B, vocab) float32 uniforms in (0, 1)."""
    h = _mix(keys[:, 0] ^ _mix(counters & _MASK))
    h = _mix(keys[:, 1] ^ h)  # (B,)
    ids = _mul32(torch.arange(vocab, device=keys.device), _GOLDEN)  # (V,)
    h = _mix(_mix(h[:, None] ^ ids[None]))  # (B, V)
    return ((h >> 9).float() + 0.5) * (1.0 / (1 << 23))  # 23 bits: the largest value stays below 1 in float32


def sample(logits: torch.Tensor, greedy: torch.Tensor | bool, keys: torch.Tensor, counters: torch.Tensor, *,
           temperature: float, top_p: float) -> torch.Tensor:
    """logits (B, V) float (forbidden tokens at -inf), greedy (B,) bool or one bool for all rows
    -> token ids (B,).

    Greedy rows take the argmax; the others sample softmax(logits / temperature) restricted to the
    top-``top_p`` nucleus (always keeping the most likely token)."""
    best = logits.argmax(-1)  # (B,)
    if greedy is True or temperature == 0:
        return best
    scaled = logits / temperature
    if top_p < 1.0:
        probs = torch.softmax(scaled, dim=-1)
        sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
        keep_sorted = torch.cumsum(sorted_probs, -1) - sorted_probs < top_p  # (B, V), the top token always kept
        keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
        scaled = scaled.masked_fill(~keep, float("-inf"))
    gumbel = -torch.log(-torch.log(uniforms(keys, counters, logits.shape[-1])))  # (B, V)
    drawn = (scaled + gumbel).argmax(-1)
    return drawn if greedy is False else torch.where(greedy, best, drawn)
