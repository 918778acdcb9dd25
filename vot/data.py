"""Problem sets on disk: ``problems.jsonl`` (one problem per line) and a PNG per problem image.

Each line is ``Problem.to_json()`` plus ``"image"``: the PNG's path relative to the JSONL file.
See the README's "Problem files" section for the schema. ``vot data`` writes them with the images
under ``images/``; ``vot bench`` writes the same file into its run directory (images under
``sketches/<problem>/input.png``), so a run on any problems, generated or imported, can be reopened.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

from tasks import Problem, get
from tasks.splits import generate_split

PROBLEMS = "problems.jsonl"


def write_problems(task_name: str, split: str, sizes: Sequence[int], count: int, seed: int, out: str | Path) -> Path:
    """Generate ``count`` problems per size and write them under ``out``; returns the JSONL path.
    Every check (the task, the sizes, ``count`` >= 1, ``out`` a new or problem-free directory) comes
    before anything is written."""
    task = get(task_name)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"--count must be a positive integer (problems per size), got {count!r}")
    out = Path(out)
    path = out / PROBLEMS
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a directory")
    if path.exists():
        raise ValueError(f"{path} exists; choose another --out")
    problems = [p for size in sizes for p in generate_split(task, split, size, count, seed)]
    return save_problems(problems, out)


def save_problems(problems: Sequence[Problem], out: str | Path,
                  image_path: Callable[[int, Problem], str] = lambda number, _: f"images/{number:05d}.png") -> Path:
    """Write ``out/problems.jsonl`` and each problem's image (at ``image_path(number, problem)``,
    relative to ``out``). The JSONL file is replaced whole, so a reader never sees half of it.
    Returns its path."""
    out = Path(out)
    path = out / PROBLEMS
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for number, problem in enumerate(problems):
        image = image_path(number, problem)
        (out / image).parent.mkdir(parents=True, exist_ok=True)
        problem.image.save(out / image)
        lines.append(json.dumps({**problem.to_json(), "image": image}, sort_keys=True) + "\n")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(lines))
    tmp.replace(path)
    return path


def read_problems(path: str | Path) -> list[Problem]:
    """Problems from a ``problems.jsonl`` written by `save_problems` (images are re-rendered from
    each problem's state, not read from the PNG files)."""
    problems = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            record.pop("image", None)
            problems.append(Problem.from_json(record))
    return problems
