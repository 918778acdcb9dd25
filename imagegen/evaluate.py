"""Sketch fidelity of a sketcher, measured by rollouts (``vot eval sketcher``).

Each rollout follows a navigation problem's gold action sequence from its input image; every
sketch is conditioned on the previous *generated* sketch (not the gold render), as in the reasoning
loop. A sketch is correct when ``Task.read`` recovers exactly the simulated state.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

import tasks
from tasks.metrics import rate, sketch_fidelity
from tasks.parsing import action_sentence
from tasks.splits import generate_split

from imagegen.data import ENVIRONMENTS, navigation_task


@dataclass
class FidelityRow:
    size: int
    steps: int
    rollouts: int
    step_accuracy: dict  # Rate.to_json()
    rollout_accuracy: dict
    redundancy: float
    v_steps: float  # mean correct sketches before the first wrong one
    mean_length: float
    sketches_per_second: float


def rollout_fidelity(sketcher, task_or_environment: str, size: int, count: int, steps: int, seed: int = 0) -> FidelityRow:
    """Roll ``sketcher`` over ``count`` test problems of ``size`` (all rollouts batched together).
    An environment name (``maze``) rolls over its navigation task's gold plans; a task id rolls over
    that task's problems: an MCQ task's stated action sequences (backtracking, overlays on the marked
    candidate cells), which is what the sketcher draws inside an MCQ reasoning chain."""
    name = task_or_environment
    task = tasks.get(navigation_task(name) if name in ENVIRONMENTS else name)
    problems = generate_split(task, "test", size, count, seed)
    plans, truths = [], []  # the thoughts of each rollout and the true state after each
    for p in problems:
        if p.actions:
            plans.append([action_sentence(a) for a in p.actions])
            truths.append(task.rollout(task.initial_state(p), p.actions))
        else:  # a navigation problem: its gold visual chain (moves, and any other thought it sketches)
            chain = [s for s in task.trace(p, "visual") if s.action is not None]
            plans.append([s.thought for s in chain])
            truths.append([s.state for s in chain])
    images = [p.image for p in problems]
    sketches: list[list] = [[] for _ in problems]
    generator = torch.Generator().manual_seed(seed)
    began, made = time.perf_counter(), 0
    for position in range(max(len(plan) for plan in plans)):
        active = [i for i, plan in enumerate(plans) if position < len(plan)]
        drawn = sketcher.sketch([images[i] for i in active], [plans[i][position] for i in active],
                                steps=steps, generator=generator)
        for i, image in zip(active, drawn):
            sketches[i].append(image)
            images[i] = image
        made += len(active)
    seconds = time.perf_counter() - began
    results = [sketch_fidelity(task, s, t) for s, t in zip(sketches, truths)]
    return FidelityRow(
        size=size, steps=steps, rollouts=len(problems),
        step_accuracy=rate(ok for r in results for ok in r.correct).to_json(),
        rollout_accuracy=rate(r.all_correct for r in results).to_json(),
        redundancy=float(np.mean([x for r in results for x in r.redundant])),
        v_steps=float(np.mean([r.v_steps for r in results])),
        mean_length=float(np.mean([len(p) for p in plans])),
        sketches_per_second=made / seconds if seconds > 0 else float("nan"),
    )


def fidelity_table(sketcher, task_or_environment: str, sizes, step_counts, count: int, seed: int = 0) -> list[FidelityRow]:
    return [rollout_fidelity(sketcher, task_or_environment, size, count, steps, seed)
            for size in sizes for steps in step_counts]


def format_fidelity(rows: list[FidelityRow]) -> str:
    lines = ["| size | steps | rollouts | per-step acc [95% CI] | whole-rollout acc [95% CI] | redundancy | V-Steps / length | sketches/s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s, w = r.step_accuracy, r.rollout_accuracy
        lines.append(
            f"| {r.size} | {r.steps} | {r.rollouts} | {100 * s['value']:.1f}% [{100 * s['low']:.1f}, {100 * s['high']:.1f}] "
            f"| {100 * w['value']:.1f}% [{100 * w['low']:.1f}, {100 * w['high']:.1f}] | {100 * r.redundancy:.1f}% "
            f"| {r.v_steps:.1f} / {r.mean_length:.1f} | {r.sketches_per_second:.0f} |")
    return "\n".join(lines)
