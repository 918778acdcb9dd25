"""Step checkpoints: a save interrupted half-way never becomes the checkpoint a run resumes from."""
from accelerate import Accelerator
from torch import nn

from imagegen.checkpoints import latest_checkpoint, save_checkpoint


def test_saves_rename_into_place_and_keep_the_newest(tmp_path):
    accelerator = Accelerator(cpu=True)
    accelerator.prepare(nn.Linear(2, 2))
    for step in (1, 2, 3):
        save_checkpoint(accelerator, tmp_path, step)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-2", "step-3"]
    (tmp_path / "partial-step-4").mkdir()  # a save killed before it completed
    assert latest_checkpoint(tmp_path) == tmp_path / "step-3"
    save_checkpoint(accelerator, tmp_path, 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-3", "step-4"]
    assert any((tmp_path / "step-4").iterdir())


def test_no_checkpoint_directory_means_no_checkpoint(tmp_path):
    assert latest_checkpoint(tmp_path / "missing") is None
