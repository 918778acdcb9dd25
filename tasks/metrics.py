"""Metrics with intervals: accuracy (Wilson 95%), planning metrics and sketch fidelity."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

from PIL import Image

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Rate:
    """A proportion with its Wilson 95% interval."""

    successes: int
    total: int

    @property
    def value(self) -> float:
        return self.successes / self.total if self.total else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.total)

    def contains(self, p: float) -> bool:
        low, high = self.interval
        return low <= p <= high

    def to_json(self) -> dict:
        low, high = self.interval
        return {"value": self.value, "low": low, "high": high, "n": self.total}

    def __str__(self) -> str:
        low, high = self.interval
        return f"{100 * self.value:.1f}% [{100 * low:.1f}, {100 * high:.1f}] (n={self.total})"


def wilson_interval(successes: int, total: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (exact endpoints 0 and 1 when at the edge)."""
    if total <= 0:
        return (float("nan"), float("nan"))
    if not 0 <= successes <= total:
        raise ValueError(f"successes must be in [0, {total}], got {successes}")
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == total else min(1.0, centre + half)
    return (low, high)


def rate(flags: Iterable[bool]) -> Rate:
    flags = list(flags)
    return Rate(sum(bool(f) for f in flags), len(flags))


LENGTH_BINS = ((1, 4), (5, 8), (9, 16), (17, None))  # stated actions; the bins issue 15's targets use


def length_bin(actions: int) -> str:
    """The bin of a stated action sequence of ``actions`` actions: ``1-4``, ``5-8``, ``9-16`` or ``17+``."""
    for low, high in LENGTH_BINS:
        if low <= actions and (high is None or actions <= high):
            return f"{low}+" if high is None else f"{low}-{high}"
    raise ValueError(f"no length bin for an action sequence of {actions} actions")


def summarize_scores(scores: Sequence) -> dict:
    """Aggregate a list of ``Score`` into metrics (accuracy or exact match, parse failures, and for
    planning: progress rate, validity and the invalid-move rate among failures)."""
    summary = {
        "accuracy": rate(s.correct for s in scores),
        "parse_failure": rate(s.parse_failed for s in scores),
    }
    if scores and scores[0].progress is not None:
        failures = [s for s in scores if not s.correct]
        summary["progress_rate"] = sum(s.progress for s in scores) / len(scores)
        summary["validity"] = rate(bool(s.valid) for s in scores)
        summary["invalid_among_failures"] = rate(not s.valid for s in failures)
    return summary


@dataclass(frozen=True)
class Fidelity:
    """Sketch fidelity of one rollout: which sketches read back as the simulated state."""

    correct: tuple[bool, ...]
    redundant: tuple[bool, ...]

    @property
    def step_accuracy(self) -> float:
        return sum(self.correct) / len(self.correct) if self.correct else float("nan")

    @property
    def all_correct(self) -> bool:
        return all(self.correct)

    @property
    def v_steps(self) -> int:
        """Number of consecutive correct sketches from the first step."""
        count = 0
        for ok in self.correct:
            if not ok:
                break
            count += 1
        return count

    @property
    def redundancy(self) -> float:
        return sum(self.redundant) / len(self.redundant) if self.redundant else float("nan")


def sketch_fidelity(task, images: Sequence[Image.Image], states: Sequence) -> Fidelity:
    """Compare each sketch (read back with ``task.read``) to the simulated state at that step.

    A sketch is *redundant* when it marks cells (agent, trail, carried object) that the true state
    does not mark. A sketch that cannot be read at all counts as wrong (not redundant)."""
    if len(images) != len(states):
        raise ValueError(f"got {len(images)} sketches for {len(states)} states")
    correct, redundant = [], []
    for image, truth in zip(images, states):
        try:
            seen = task.read(image)
        except ValueError:
            correct.append(False)
            redundant.append(False)
            continue
        correct.append(seen == truth)
        redundant.append(bool(task.marked_cells(seen) - task.marked_cells(truth)))
    return Fidelity(tuple(correct), tuple(redundant))
