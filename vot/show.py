"""``vot show RUN_DIR``: a chain in the terminal."""
from __future__ import annotations

from pathlib import Path

from vot.chain import problem_records


def show_run(run_dir: str | Path, problem_id: str | None = None, group: str | None = None) -> str:
    """Text rendering of one problem's chains (thoughts, sketch files, scores, answer)."""
    problem_id, records = problem_records(run_dir, problem_id)
    lines = [f"problem {problem_id}"]
    for record in records:
        name = f"{record['strategy']}@{record['n']}"
        if record["problem_id"] != problem_id or (group and name != group):
            continue
        chain = record["chain"]
        flag = " [selected]" if record["selected"] else ""
        lines.append(f"-- {name} chain {chain['sample']}{flag}: answer {chain['answer']!r} "
                     f"({'correct' if record['correct'] else 'wrong'}{'' if chain['finished'] else ', unfinished'})")
        for number, step in enumerate(chain["steps"]):
            scores = " ".join(f"{k}={v:.2f}" for k, v in step["scores"].items())
            sketch = f"  [{step['sketch_path']}]" if step.get("sketch_path") else ""
            lines.append(f"   {number:>2}. {step['thought']}{sketch}  {scores}".rstrip())
    return "\n".join(lines)
