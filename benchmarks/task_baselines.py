"""Gold traces and trivial baselines on the canonical benchmark (DESIGN.md §5: gold must score 100%,
trivial baselines at chance).

    python benchmarks/task_baselines.py [--count 250] [--seed 0]

Prints a markdown table (one row per task and policy, pooled over the task's benchmark sizes) with
Wilson 95% intervals and the chance rate; paste it into BENCHMARKS.md with the command and machine.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import tasks
from tasks import baselines
from tasks.metrics import rate
from tasks.splits import benchmark


def policies(task, rng):
    gold = lambda p: task.trace(p)[-1].thought
    if task.kind == "mcq":
        return {"gold": gold, "random_option": lambda p: baselines.random_option(p, rng),
                "always_a": baselines.always_a, "copy_start": baselines.copy_start}
    return {"gold": gold, "empty_plan": baselines.empty_plan}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print("| task | sizes | n | policy | score [95% CI] | chance | progress |")
    print("|---|---|---|---|---|---|---|")
    for name in tasks.names():
        task = tasks.get(name)
        started = time.perf_counter()
        problems = [p for ps in benchmark(task, args.count, args.seed).values() for p in ps]
        sizes = ",".join(map(str, task.in_distribution + task.out_of_distribution))
        for policy, answer in policies(task, np.random.default_rng(args.seed)).items():
            scores = [task.check(p, answer(p)) for p in problems]
            accuracy = rate(s.correct for s in scores)
            chance = 1.0 if policy == "gold" else (1 / len(problems[0].options) if task.kind == "mcq" else 0.0)
            progress = f"{np.mean([s.progress for s in scores]):.3f}" if task.kind == "nav" else "-"
            print(f"| {name} | {sizes} | {len(problems)} | {policy} | {accuracy} | {chance:.3f} | {progress} |")
        print(f"<!-- {name}: {time.perf_counter() - started:.1f} s -->")


if __name__ == "__main__":
    main()
