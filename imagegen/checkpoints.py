"""Step checkpoints shared by the trainers (the sketcher's here, the policy's in `vot.lm.train`)."""
from __future__ import annotations

import shutil
from pathlib import Path


def step_of(path: Path) -> int:
    return int(path.name.split("-")[1])


def latest_checkpoint(checkpoints: Path) -> Path | None:
    """The ``step-N`` directory with the largest N, or None."""
    found = sorted(checkpoints.iterdir(), key=step_of) if checkpoints.is_dir() else []
    return found[-1] if found else None


def save_checkpoint(accelerator, checkpoints: Path, step: int, keep: int = 2) -> None:
    """``accelerator.save_state`` to ``step-<step>``, keeping only the newest ``keep``."""
    accelerator.save_state(checkpoints / f"step-{step}")
    for old in sorted(checkpoints.iterdir(), key=step_of)[:-keep]:
        shutil.rmtree(old)
