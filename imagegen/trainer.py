"""One training scaffold for the sketcher, policy and verifier trainers.

`TrainingRun` owns what every trainer does the same way: the output directory (refused when it is
not empty unless resuming), the `accelerate.Accelerator` (bf16 autocast on GPU, fp32 on CPU), the
warmup + cosine schedule, step checkpoints, resume, ``training_log.jsonl``, the progress bar and
``train_summary.json``. A trainer keeps only its data, its model and its loss.

Checkpoints are named and pruned by accelerate's ``ProjectConfiguration``
(``checkpoints/checkpoint_<step>``, the newest ``keep`` kept). A checkpoint counts once a
``complete`` marker is written after ``save_state`` returns, so a run killed while saving resumes
from the previous complete one. Resuming is exact when the trainer draws each step's batch from
keys of (seed, step) only, as all three do.

It lives in `imagegen` because the trainers of both `imagegen` and `vot` need it and `vot` depends
on `imagegen`, not the other way round; it knows nothing about diffusion or policies.
"""
from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Iterator

import torch

MARKER = "complete"


def _step_of(path: Path) -> int:
    return int(path.name.rpartition("_")[2])


def complete_checkpoints(checkpoints: Path) -> list[Path]:
    """The complete ``checkpoint_<step>`` directories under ``checkpoints``, oldest first."""
    if not checkpoints.is_dir():
        return []
    found = [p for p in checkpoints.glob("checkpoint_*") if (p / MARKER).is_file()]
    return sorted(found, key=_step_of)


def latest_checkpoint(checkpoints: Path) -> Path | None:
    """The complete checkpoint of the largest step, or None."""
    found = complete_checkpoints(checkpoints)
    return found[-1] if found else None


def step_of(checkpoint: Path) -> int:
    """The optimizer steps done when ``checkpoint`` was saved."""
    return _step_of(checkpoint)


def training_device(device: str) -> bool:
    """Whether ``device`` ("auto", "cpu", "cuda") means training on the CPU."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    return device == "cpu" or (device == "auto" and not torch.cuda.is_available())


class TrainingRun:
    """The shared part of a training run in ``out``: see the module docstring.

    Typical use::

        run = TrainingRun(out, steps=1000, description="policy maze", resume=resume)
        model, optimizer, schedule = run.prepare(model, optimizer, run.cosine(optimizer, warmup, 1000))
        for step in run.steps(run.restore()):
            loss = ...
            run.optimizer_step(loss, model.parameters(), optimizer, schedule)
            run.record(step, loss, schedule)
        if run.stopped:   # stop_after: a checkpoint was saved, no final weights
            return out
        ... save the weights ...
        run.finish({"parameters": ...})
    """

    def __init__(self, out: str | Path, *, steps: int, description: str, resume: bool = False, device: str = "auto",
                 checkpoint_every: int = 250, keep: int = 2, stop_after: int | None = None,
                 progress: bool | None = None, log_every: int = 25):
        from accelerate import Accelerator
        from accelerate.utils import ProjectConfiguration

        self.out = Path(out)
        if self.out.is_file():
            raise ValueError(f"{self.out} is a file; --out must name a directory")
        if self.out.exists() and any(self.out.iterdir()) and not resume:
            raise ValueError(f"{self.out} is not empty; pass --resume to continue training there or choose another --out")
        if steps < 1 or checkpoint_every < 1:
            raise ValueError(f"steps and checkpoint_every must be positive, got {steps} and {checkpoint_every}")
        if keep < 2:  # accelerate prunes before it saves: one kept checkpoint could be the one a kill destroys
            raise ValueError(f"keep at least 2 checkpoints, got {keep}")
        old = sorted(p.name for p in (self.out / "checkpoints").glob("*step-*")) if (self.out / "checkpoints").is_dir() else []
        if old and resume:
            raise ValueError(f"{self.out}/checkpoints holds checkpoints of the old format ({old[-1]}); resume that run "
                             "with the release that wrote it, or start a new --out")
        cpu = training_device(device)
        self.out.mkdir(parents=True, exist_ok=True)
        self.total, self.resume, self.description = steps, resume, description
        self.checkpoint_every, self.log_every = checkpoint_every, log_every
        self.stop_after = stop_after if stop_after is not None and stop_after < steps else None  # at the end: just finish
        self.checkpoints = self.out / "checkpoints"
        project = ProjectConfiguration(project_dir=str(self.out), automatic_checkpoint_naming=True, total_limit=keep)
        self.accelerator = Accelerator(cpu=cpu, mixed_precision="no" if cpu else "bf16", project_config=project)
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.stopped = False
        self.bar = None
        self._log = None  # opened by the first record, so a run refused while it sets up leaves its --out empty
        self.began = time.perf_counter()

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @staticmethod
    def cosine(optimizer, warmup: int, steps: int):
        """Linear warmup over ``warmup`` steps, then cosine decay to 0 at ``steps``."""
        from diffusers.optimization import get_cosine_schedule_with_warmup

        return get_cosine_schedule_with_warmup(optimizer, warmup, steps)

    def prepare(self, *objects, checkpointed: tuple = ()):
        """``accelerator.prepare`` the models, optimizer and schedule; ``checkpointed`` objects with
        ``state_dict``/``load_state_dict`` (an EMA) are saved and restored with them."""
        prepared = self.accelerator.prepare(*objects)
        for item in checkpointed:
            self.accelerator.register_for_checkpointing(item)
        return prepared

    def restore(self) -> int:
        """When resuming, load the latest complete checkpoint and return its step; else 0. Incomplete
        checkpoints (a run killed while saving) are removed."""
        if not self.resume:
            return 0
        for partial in self.checkpoints.glob("checkpoint_*") if self.checkpoints.is_dir() else []:
            if not (partial / MARKER).is_file():
                shutil.rmtree(partial)
        latest = latest_checkpoint(self.checkpoints)
        if latest is None:
            return 0
        self.accelerator.load_state(str(latest))
        self.log({"event": "resumed", "step": step_of(latest)})
        return step_of(latest)

    def save(self, step: int) -> Path:
        """Save the prepared state as the checkpoint of ``step`` (done steps)."""
        self.accelerator.project_configuration.iteration = step  # names it checkpoint_<step>
        target = self.checkpoints / f"checkpoint_{step}"
        shutil.rmtree(target, ignore_errors=True)  # an incomplete one from a killed run
        # accelerate warns at every save about what is expected here: pruning to `keep` checkpoints,
        # and the tied lm_head it drops (restored on load). Only its errors reach the log.
        loggers = [logging.getLogger(name) for name in ("accelerate.accelerator", "accelerate.utils.other")]
        levels = [logger.level for logger in loggers]
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            self.accelerator.save_state()
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)
        (target / MARKER).write_text(json.dumps({"step": step}))
        return target

    def steps(self, start: int = 0) -> Iterator[int]:
        """The steps ``start`` ... ``steps - 1`` under a progress bar. After each step the caller
        finishes, a checkpoint is saved every ``checkpoint_every`` steps (not after the last), and at
        ``stop_after`` the loop saves, sets ``stopped`` and ends. Breaking out saves nothing."""
        from tqdm.auto import tqdm

        self.bar = tqdm(range(start, self.total), initial=start, total=self.total, desc=self.description,
                        disable=not self.progress)
        for step in self.bar:
            yield step
            done = step + 1
            stopping = self.stop_after is not None and done == self.stop_after
            if (done % self.checkpoint_every == 0 or stopping) and done < self.total:
                self.save(done)
            if stopping:
                self.stopped = True
                self.close()
                return

    def optimizer_step(self, loss: torch.Tensor, parameters, optimizer, schedule, max_norm: float = 1.0) -> None:
        """Backward, clip the gradient norm to ``max_norm``, step the optimizer and the schedule, zero the grads."""
        parameters = list(parameters)
        self.accelerator.backward(loss)
        self.accelerator.clip_grad_norm_(parameters, max_norm)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)

    def record(self, step: int, loss: torch.Tensor, schedule, **extra) -> None:
        """Log the loss and learning rate every ``log_every`` steps and at the last; show the loss."""
        if step % self.log_every == 0 or step == self.total - 1:
            value = float(loss.detach())
            self.log({"step": step, "loss": value, "lr": schedule.get_last_lr()[0]} | extra)
            if self.bar is not None:
                self.bar.set_postfix(loss=f"{value:.4f}")

    def log(self, record: dict) -> None:
        """Append ``record`` (with the seconds since the run began) to ``training_log.jsonl``."""
        if self._log is None:
            self._log = (self.out / "training_log.jsonl").open("a")
        self._log.write(json.dumps({**record, "seconds": round(self.elapsed, 1)}) + "\n")
        self._log.flush()

    def say(self, text: str) -> None:
        """A line on the terminal that does not break the progress bar."""
        (self.bar.write if self.bar is not None else print)(text)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.began

    def close(self) -> None:
        if self._log is not None and not self._log.closed:
            self._log.close()

    def finish(self, summary: dict) -> None:
        """Remove the checkpoints (the final weights are saved) and write ``train_summary.json``."""
        shutil.rmtree(self.checkpoints, ignore_errors=True)
        (self.out / "train_summary.json").write_text(json.dumps(
            summary | {"wall_seconds": round(self.elapsed, 1), "device": str(self.device)}, indent=2))
        self.close()
