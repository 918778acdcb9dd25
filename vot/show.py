"""``vot show RUN_DIR``: a chain in the terminal."""
from __future__ import annotations

from pathlib import Path

from vot.run import read_run


def show_run(run_dir: str | Path, problem_id: str | None = None, group: str | None = None) -> str:
    """Text rendering of one problem's chains (thoughts, sketch files, scores, answer), read with
    `vot.run.read_run`; ``group`` (``strategy@N``) keeps one group."""
    entry = read_run(run_dir).problem(problem_id)
    groups = list(entry.groups())
    if group and group not in groups:
        raise ValueError(f"--strategy {group!r} is not in this run; its groups are {', '.join(groups)}")
    lines = [f"problem {entry.id}"]
    for record in entry.chains:
        if group and record.group != group:
            continue
        chain = record.chain
        flag = " [selected]" if record.selected else ""
        lines.append(f"-- {record.group} chain {chain.sample}{flag}: answer {chain.answer!r} "
                     f"({'correct' if record.correct else 'wrong'}{'' if chain.finished else ', unfinished'})")
        for number, step in enumerate(chain.steps):
            scores = " ".join(f"{k}={v:.2f}" for k, v in step.scores.items())
            sketch = f"  [{step.sketch_path}]" if step.sketch_path else ""
            lines.append(f"   {number:>2}. {step.thought}{sketch}  {scores}".rstrip())
    return "\n".join(lines)
