"""Writing problem sets to disk: ``problems.jsonl`` (one problem per line) and ``images/*.png``.

Each line is ``Problem.to_json()`` plus ``"image"``: the PNG's path relative to the JSONL file.
See the README's "Problem files" section for the schema.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from tasks import Problem, get
from tasks.splits import generate_split


def write_problems(task_name: str, split: str, sizes: Sequence[int], count: int, seed: int, out: str | Path) -> Path:
    """Generate ``count`` problems per size and write them under ``out``; returns the JSONL path.
    Every check (the task, the sizes, ``count`` >= 1, ``out`` a new or problem-free directory) comes
    before anything is written."""
    task = get(task_name)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"--count must be a positive integer (problems per size), got {count!r}")
    out = Path(out)
    path = out / "problems.jsonl"
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a directory")
    if path.exists():
        raise ValueError(f"{path} exists; choose another --out")
    problems = [p for size in sizes for p in generate_split(task, split, size, count, seed)]
    (out / "images").mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        for number, problem in enumerate(problems):
            image = f"images/{number:05d}.png"
            problem.image.save(out / image)
            handle.write(json.dumps({**problem.to_json(), "image": image}, sort_keys=True) + "\n")
    return path


def read_problems(path: str | Path) -> list[Problem]:
    """Problems from a ``problems.jsonl`` written by ``write_problems`` (images are re-rendered)."""
    problems = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            record.pop("image", None)
            problems.append(Problem.from_json(record))
    return problems
