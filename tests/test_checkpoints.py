"""The training scaffold: checkpoints named and pruned by accelerate, a save interrupted half-way
never becomes the checkpoint a run resumes from, and resume continues exactly."""
import json

import pytest
import torch
from torch import nn

from imagegen.trainer import TrainingRun, latest_checkpoint, step_of


def _train(out, steps, *, resume=False, stop_after=None, checkpoint_every=2):
    """A tiny real run: a linear layer fit to a fixed target, batches keyed by (seed, step)."""
    run = TrainingRun(out, steps=steps, description="test", resume=resume, device="cpu",
                      checkpoint_every=checkpoint_every, stop_after=stop_after, progress=False, log_every=1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = nn.Linear(3, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model, optimizer, schedule = run.prepare(model, optimizer, run.cosine(optimizer, 1, steps))
    for step in run.steps(run.restore()):
        generator = torch.Generator().manual_seed(step)
        x = torch.randn(8, 3, generator=generator)
        loss = ((model(x) - x.sum(1, keepdim=True)) ** 2).mean()
        run.optimizer_step(loss, model.parameters(), optimizer, schedule)
        run.record(step, loss, schedule)
    if not run.stopped:
        run.finish({"steps": steps})
    return run, model


def test_checkpoints_are_named_by_step_and_pruned_to_the_newest(tmp_path):
    run, _ = _train(tmp_path / "run", 9, stop_after=8)
    assert run.stopped
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["checkpoint_6", "checkpoint_8"]
    latest = latest_checkpoint(tmp_path / "run" / "checkpoints")
    assert step_of(latest) == 8 and json.loads((latest / "complete").read_text()) == {"step": 8}


def test_an_incomplete_checkpoint_is_skipped_and_removed_on_resume(tmp_path):
    out = tmp_path / "run"
    _train(out, 6, stop_after=4)
    (out / "checkpoints" / "checkpoint_5").mkdir()  # a save killed before its marker was written
    assert step_of(latest_checkpoint(out / "checkpoints")) == 4
    _, resumed = _train(out, 6, resume=True)
    _, whole = _train(tmp_path / "whole", 6)
    assert torch.equal(resumed.weight, whole.weight) and torch.equal(resumed.bias, whole.bias)
    assert not (out / "checkpoints").exists()  # removed once the run finished
    log = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
    assert {"event": "resumed", "step": 4} == {k: log[4][k] for k in ("event", "step")}
    assert [r["step"] for r in log if "loss" in r] == [0, 1, 2, 3, 4, 5]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 6 and summary["device"] == "cpu"


def test_a_used_directory_needs_resume_and_a_file_is_refused(tmp_path):
    _train(tmp_path / "run", 2)
    with pytest.raises(ValueError, match="--resume"):
        _train(tmp_path / "run", 2)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        _train(tmp_path / "file", 2)
    with pytest.raises(ValueError, match="device"):
        TrainingRun(tmp_path / "new", steps=2, description="x", device="tpu")
    assert not (tmp_path / "new").exists()


def test_no_checkpoint_directory_means_no_checkpoint(tmp_path):
    assert latest_checkpoint(tmp_path / "missing") is None
