"""Deterministic, layout-disjoint, de-duplicated splits and the canonical benchmark.

Every (task, size, seed) has one stream of generated problems. Each problem's *layout* (the maze
walls, the lake map, the room) is hashed into one of 20 buckets: 0-13 train, 14-15 val, 16-19 test.
So no test layout can ever appear in train, whatever seeds or counts are used. Within a split,
identical questions are dropped (the first occurrence is kept).
"""
from __future__ import annotations

import zlib

import numpy as np

from tasks.core import Problem, Task
from tasks.registry import get

BUCKETS = 20
SPLITS = {"train": range(0, 14), "val": range(14, 16), "test": range(16, 20)}

# The canonical benchmark: fixed seed, 250 test problems per size. Sizes are each task's own
# in-distribution (3-6 for mazes and lakes; 7-8 rooms for MiniBehavior) and out-of-distribution ones.
BENCHMARK_SEED = 0
BENCHMARK_COUNT = 250


def _stable_hash(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def split_of(task: Task, problem: Problem) -> str:
    """The split a problem's layout belongs to."""
    bucket = _stable_hash(task.layout_key(problem)) % BUCKETS
    return next(name for name, buckets in SPLITS.items() if bucket in buckets)


def problem_stream_rng(task: Task, size: int, seed: int) -> np.random.Generator:
    """The generator behind the (task, size, seed) stream; independent of the split."""
    return np.random.default_rng([_stable_hash(task.stream_id or task.id), int(size), int(seed)])


def generate_split(task: Task | str, split: str, size: int, count: int, seed: int = 0,
                   max_draws: int | None = None) -> list[Problem]:
    """``count`` distinct problems of ``split`` at ``size``; same arguments, same problems.

    Raises ValueError if the stream cannot supply ``count`` distinct problems within ``max_draws``
    draws (for example a tiny maze has too few layouts for a large test split)."""
    task = get(task)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLITS)}")
    if count < 0:
        raise ValueError(f"count must be non-negative, got {count}")
    task.check_size(size)
    rng = problem_stream_rng(task, size, seed)
    max_draws = max_draws if max_draws is not None else 100 * count + 1000
    problems, seen = [], set()
    for _ in range(max_draws):
        if len(problems) == count:
            break
        problem = task.generate(rng, size)
        if split_of(task, problem) != split:
            continue
        key = task.problem_key(problem)
        if key in seen:
            continue
        seen.add(key)
        index = len(problems)
        problem.id = f"{task.id}/{split}/s{size}/seed{seed}/{index:05d}"
        problem.meta.update(split=split, seed=seed, index=index)
        problems.append(problem)
    if len(problems) < count:
        raise ValueError(
            f"{task.id}: only {len(problems)} distinct {split} problems of size {size} after {max_draws} draws "
            f"(asked for {count}); use a larger size or a smaller count"
        )
    return problems


def benchmark(task: Task | str, count: int = BENCHMARK_COUNT, seed: int = BENCHMARK_SEED) -> dict[int, list[Problem]]:
    """The canonical test set: ``count`` problems per in- and out-of-distribution size."""
    task = get(task)
    sizes = task.in_distribution + task.out_of_distribution
    return {size: generate_split(task, "test", size, count, seed) for size in sizes}
