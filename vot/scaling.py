"""Best-of-k curves from one run at N_max (generate N once, subsample every k).

For each problem and each k in 1, 2, 4, …, N_max, many random size-k subsets of its N_max chains are
drawn; each selector picks an answer from the subset; the problem's accuracy at k is the share of
subsets answered correctly. pass@k (oracle) uses the exact unbiased estimator. Intervals are 95%
percentile bootstraps over problems.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from math import comb
from typing import Sequence

import numpy as np

import tasks
from tasks import Problem
from vot.chain import Chain
from vot.selection import pick
from vot.verifiers import Verifier, answer_key


@dataclass
class ScoredPool:
    """One problem's N chains reduced to what selection needs."""

    keys: list  # parsed answer per chain (None: unparseable)
    correct: np.ndarray  # (N,) bool
    scores: dict[str, np.ndarray]  # verifier label -> (N,) chain score


def score_pool(problem: Problem, chains: Sequence[Chain], verifiers: Sequence[Verifier], how: str = "min") -> ScoredPool:
    """A problem's pool of chains reduced to what the curves need: each chain's parsed answer,
    whether it is right, and its score under every step-level verifier (combined by ``how``).
    Scoring writes each step's score into ``step.scores`` (`vot.verifiers.Verifier.score`)."""
    task = tasks.get(problem.task)
    keys = [answer_key(problem, c.answer) for c in chains]
    correct = np.array([c.answer is not None and task.check(problem, c.answer).correct for c in chains])
    scores = {v.label: np.array([v.score(problem, c, chains, how) for c in chains], dtype=float)
              for v in verifiers if v.step_level}
    return ScoredPool(keys, correct, scores)


def powers_of_two(n_max: int) -> list[int]:
    ks, k = [], 1
    while k < n_max:
        ks.append(k)
        k *= 2
    return ks + [n_max]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al., 2021)."""
    return 1.0 if n - c < k else 1.0 - comb(n - c, k) / comb(n, k)


def curves(pools: Sequence[ScoredPool], ks: Sequence[int], rng: np.random.Generator, trials: int = 32) -> dict:
    """Per-problem accuracy at each k for: best_of_k/<verifier>, weighted@k/<verifier>, maj@k and
    pass@k (oracle). Returns {name: {k: per-problem accuracies (array)}}."""
    out: dict[str, dict[int, np.ndarray]] = {}

    def put(name, k, values):
        out.setdefault(name, {})[k] = np.asarray(values, dtype=float)

    for k in ks:
        per: dict[str, list[float]] = {}
        for pool in pools:
            n = len(pool.keys)
            if k > n:
                raise ValueError(f"k={k} exceeds the {n} chains sampled for a problem")
            subsets = [np.arange(n)] if k == n else [rng.choice(n, size=k, replace=False) for _ in range(trials)]
            hits: dict[str, int] = Counter()
            for subset in subsets:
                chosen = pick("majority", pool.keys, subset=subset)
                hits["maj@k"] += chosen is not None and bool(pool.correct[chosen])
                for label, scores in pool.scores.items():
                    for rule, name in (("best", "best_of_k"), ("weighted", "weighted@k")):
                        chosen = pick(rule, pool.keys, scores, subset)
                        hits[f"{name}/{label}"] += chosen is not None and bool(pool.correct[chosen])
            names = ["maj@k"] + [f"{m}/{label}" for label in pool.scores for m in ("best_of_k", "weighted@k")]
            for name in names:
                per.setdefault(name, []).append(hits[name] / len(subsets))
            per.setdefault("pass@k/oracle", []).append(pass_at_k(n, int(pool.correct.sum()), k))
        for name, values in per.items():
            put(name, k, values)
    return out


def bootstrap_interval(values: np.ndarray, rng: np.random.Generator, resamples: int = 1000) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean over problems."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return (float("nan"), float("nan"))
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    return (float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)))


def summarize_curves(raw: dict, rng: np.random.Generator) -> dict:
    """{name: {k: {value, low, high, n}}} for summary.json."""
    summary = {}
    for name, by_k in raw.items():
        summary[name] = {}
        for k, values in by_k.items():
            low, high = bootstrap_interval(values, rng)
            summary[name][str(k)] = {"value": float(values.mean()), "low": low, "high": high, "n": int(len(values))}
    return summary
