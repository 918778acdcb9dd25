"""``vot bench``: evaluate a policy on a task's test problems and write a run directory.

Until learned models ship, the policies here are *reference* components: the gold trace (an upper
bound that must score 100%) and the trivial baselines (which must score at chance). Every output
says so.
"""
from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

import tasks
from tasks import baselines
from tasks.metrics import summarize_scores
from tasks.splits import generate_split

REFERENCE_POLICIES = ("gold", "random_option", "always_a", "copy_start", "empty_plan")


@dataclass
class BenchConfig:
    task: str
    policy: str = "gold"
    sizes: list[int] | None = None
    count: int = 50
    seed: int = 0
    split: str = "test"
    out: str | None = None


def reference_policy(name: str, task: tasks.Task, seed: int) -> Callable[[tasks.Problem], str]:
    """Answer function of a reference policy; raises ValueError naming the valid choices."""
    if name == "gold":
        return lambda problem: task.trace(problem)[-1].thought
    if name == "random_option":
        if task.kind != "mcq":
            raise ValueError(f"policy 'random_option' needs a multiple-choice task, {task.id} is {task.kind}")
        rng = np.random.default_rng(seed)
        return lambda problem: baselines.random_option(problem, rng)
    if name in ("always_a", "copy_start", "empty_plan"):
        if name == "always_a" and task.kind != "mcq":
            raise ValueError(f"policy 'always_a' needs a multiple-choice task, {task.id} is {task.kind}")
        return getattr(baselines, name)
    raise ValueError(f"unknown policy {name!r}; available: {', '.join(REFERENCE_POLICIES)}")


def run_bench(config: BenchConfig) -> dict:
    """Run the benchmark described by ``config``; returns the summary written to ``summary.json``."""
    task = tasks.get(config.task)
    answer = reference_policy(config.policy, task, config.seed)
    sizes = config.sizes or list(task.in_distribution + task.out_of_distribution)
    for size in sizes:
        task.check_size(size)
    out = Path(config.out or f"runs/{task.id}-{config.policy}-seed{config.seed}")
    out.mkdir(parents=True, exist_ok=True)
    print(f"vot bench {task.id}: policy '{config.policy}' is a REFERENCE component (no learned models yet)")
    started = time.perf_counter()
    by_size = {}
    with (out / "results.jsonl").open("w") as results:
        for size in sizes:
            scores = []
            for problem in generate_split(task, config.split, size, config.count, config.seed):
                text = answer(problem)
                score = task.check(problem, text)
                scores.append(score)
                results.write(json.dumps({"problem": problem.id, "size": size, "answer": text, "score": asdict(score)}) + "\n")
                results.flush()
            by_size[size] = summarize_scores(scores)
    summary = {
        "config": asdict(config) | {"sizes": sizes},
        "reference_components": True,
        "task": task.id,
        "versions": {"vot": __import__("vot").__version__, "python": platform.python_version(), "numpy": np.__version__},
        "wall_seconds": time.perf_counter() - started,
        "metrics": {str(size): _jsonable(metrics) for size, metrics in by_size.items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    _print_table(task, by_size)
    print(f"wrote {out / 'results.jsonl'} and {out / 'summary.json'}")
    return summary


def _jsonable(metrics: dict) -> dict:
    return {key: value.to_json() if hasattr(value, "to_json") else value for key, value in metrics.items()}


def _print_table(task: tasks.Task, by_size: dict) -> None:
    header = "size  accuracy (95% CI)                   parse-fail"
    if task.kind == "nav":
        header = "size  exact match (95% CI)                progress  validity"
    print(header)
    for size, metrics in by_size.items():
        line = f"{size:>4}  {str(metrics['accuracy']):<36}"
        if task.kind == "nav":
            line += f"{metrics['progress_rate']:>8.3f}  {metrics['validity'].value:>8.3f}"
        else:
            line += f"{metrics['parse_failure'].value:>10.3f}"
        print(line)
