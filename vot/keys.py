"""Per-chain random keys: one home for how a chain's randomness is derived.

Every random draw of a chain (its sampled tokens, the noise of each of its sketches) comes from a
key built from (seed, problem id, what is drawn, the chain's lineage), never from a generator that
lives across chains. So a chain's result does not depend on batch size, on the order problems run
in, on resuming a killed run, or on what ran before in the process, and the chains of one problem
get independent imagination.

The lineage of a chain is ``(sample,)`` for a fresh chain, extended by one branch number per fork
or rewind (`vot.reasoner.Reasoner.fork`).
"""
from __future__ import annotations

import zlib
from typing import Sequence

import numpy as np

SKETCH_STREAM = 0x5E7C  # tags sketch noise keys apart from token keys


def chain_seed(seed: int, problem_id: str, lineage: Sequence[int]) -> int:
    """A 62-bit seed for a chain's token sampling (the `SmallPolicy` generator)."""
    key = np.random.default_rng([seed, zlib.crc32(problem_id.encode()), *lineage])
    return int(key.integers(2**62))


def sketch_seed(seed: int, problem_id: str, lineage: Sequence[int], step: int, candidate: int = 0) -> int:
    """A 62-bit seed for the noise of one sketch: the ``candidate``-th draw (sketch-level search)
    after thought number ``step`` (1-based) of the chain with ``lineage``."""
    key = np.random.default_rng([seed, zlib.crc32(problem_id.encode()), SKETCH_STREAM, int(step), int(candidate),
                                 *map(int, lineage)])
    return int(key.integers(2**62))


def sketch_generator(seed: int, problem_id: str, lineage: Sequence[int], step: int, candidate: int = 0):
    """A CPU ``torch.Generator`` seeded by `sketch_seed` (CPU, so the noise is the same on every
    device; the sketcher moves it to its own)."""
    import torch

    return torch.Generator().manual_seed(sketch_seed(seed, problem_id, lineage, step, candidate))
