"""Selection rules: one home for how a pool of chains becomes one answer.

Strategies (`vot.strategies`) apply them to the chains they ran; the best-of-k curves
(`vot.scaling`) apply them to subsets of one sampled pool. Both call `pick`, so the curve at k = N
and the strategy at N select the same chain from the same pool.

Rules, each over the chains of ``subset`` (default: all):

- ``best``: the highest-scored chain among those whose answer parses (all chains when none does);
  ties go to the earliest chain.
- ``weighted``: sum the scores of the chains giving each parseable answer; the heaviest answer wins
  (ties: the answer given first), and its best-scored chain is returned.
- ``majority``: the most frequent parseable answer (ties: the answer given first); its first chain.
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from tasks import Problem
from vot.chain import Chain
from vot.verifiers import Verifier, answer_key

RULES = ("best", "weighted", "majority")


def pick(rule: str, keys: Sequence, scores: Sequence[float] | None = None, subset: Sequence[int] | None = None) -> int | None:
    """The index (into ``keys``) of the chain ``rule`` selects, or ``None`` when it selects none.

    Args:
        rule: ``best``, ``weighted`` or ``majority``.
        keys: each chain's parsed answer (`vot.verifiers.answer_key`; ``None`` when unparseable).
        scores: each chain's verifier score (needed by ``best`` and ``weighted``).
        subset: the chain indices to select among (default: all).
    """
    if rule not in RULES:
        raise ValueError(f"unknown selection rule {rule!r}; expected one of {RULES}")
    indices = [int(i) for i in (range(len(keys)) if subset is None else subset)]
    if rule != "majority" and scores is None:
        raise ValueError(f"the {rule!r} rule needs a score per chain")
    parseable = [i for i in indices if keys[i] is not None]
    if rule == "best":
        candidates = parseable or indices
        return max(candidates, key=lambda i: (scores[i], -i)) if candidates else None
    if not parseable:
        return None
    first: dict = {}
    for i in parseable:
        first.setdefault(keys[i], i)
    if rule == "majority":
        counts = Counter(keys[i] for i in parseable)
        return first[max(counts, key=lambda k: (counts[k], -first[k]))]
    totals: dict = {}
    for i in parseable:
        totals[keys[i]] = totals.get(keys[i], 0.0) + float(scores[i])
    winner = max(totals, key=lambda k: (totals[k], -first[k]))
    return max((i for i in parseable if keys[i] == winner), key=lambda i: (scores[i], -i))


def select(problem: Problem, chains: Sequence[Chain], rule: str, verifier: Verifier | None = None,
           how: str = "min") -> int | None:
    """Apply ``rule`` to an existing pool of chains of ``problem``; ``verifier`` scores them (its
    step scores combined by ``how``; the chains' ``step.scores`` are filled in). Returns the index of
    the selected chain, or ``None``."""
    keys = [answer_key(problem, c.answer) for c in chains]
    if rule == "majority":
        return pick(rule, keys)
    if verifier is None:
        raise ValueError(f"the {rule!r} rule needs a verifier")
    scores = np.array([verifier.score(problem, c, chains, how) for c in chains], dtype=float)
    return pick(rule, keys, scores)
