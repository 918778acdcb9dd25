"""Step checkpoints shared by the trainers (the sketcher's here, the policy's in `vot.lm.train`).

A checkpoint is written to ``partial-step-N`` and renamed to ``step-N`` once complete, so a run
killed while saving still resumes from the previous complete checkpoint.
"""
from __future__ import annotations

import shutil
from pathlib import Path


def step_of(path: Path) -> int:
    return int(path.name.split("-")[1])


def _complete(checkpoints: Path) -> list[Path]:
    if not checkpoints.is_dir():
        return []
    return sorted((p for p in checkpoints.iterdir() if p.name.startswith("step-")), key=step_of)


def latest_checkpoint(checkpoints: Path) -> Path | None:
    """The complete ``step-N`` directory with the largest N, or None."""
    found = _complete(checkpoints)
    return found[-1] if found else None


def save_checkpoint(accelerator, checkpoints: Path, step: int, keep: int = 2) -> None:
    """``accelerator.save_state`` to ``step-<step>`` (via a partial directory), keeping the newest ``keep``."""
    partial, final = checkpoints / f"partial-step-{step}", checkpoints / f"step-{step}"
    shutil.rmtree(partial, ignore_errors=True)
    accelerator.save_state(partial)
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    for old in _complete(checkpoints)[:-keep]:
        shutil.rmtree(old)
