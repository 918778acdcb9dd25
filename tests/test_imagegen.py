"""The diffusion sketcher: tiny real UNet and text tower (built, not mocked), save/load, batching,
bad input, training with resume, the rollout evaluator, and the local InstructPix2Pix adapter."""
import json

import numpy as np
import pytest
import torch

import tasks
from imagegen import BlankSketcher, OracleSketcher, load_sketcher
from imagegen.attention import configure_attention
from imagegen.evaluate import rollout_fidelity
from imagegen.pipeline import SketchPipeline
from imagegen.train import SketcherTrainConfig, build_pipeline, perturb_condition, train_sketcher

MAZE = tasks.get("maze-nav-v0")


@pytest.fixture(scope="module")
def pipe():
    return build_pipeline("maze", "tiny", seed=0)


def _images(sizes):
    rng = np.random.default_rng(0)
    return [MAZE.generate(rng, s).image for s in sizes]


def test_save_load_round_trip_gives_identical_sketches(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    again = SketchPipeline.from_pretrained(tmp_path)
    images = _images([4, 5])
    thoughts = ["Go up.", "Go left."]
    first = pipe(images, thoughts, num_inference_steps=3, generator=torch.Generator().manual_seed(1))
    second = again(images, thoughts, num_inference_steps=3, generator=torch.Generator().manual_seed(1))
    for a, b in zip(first, second):
        assert a.size == b.size
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_batched_equals_one_by_one(pipe):
    images = _images([5, 5, 3, 6])
    thoughts = ["Go up.", "Go down.", "Go left.", "Go right."]
    batched = pipe(images, thoughts, num_inference_steps=2, generator=[torch.Generator().manual_seed(i) for i in range(4)])
    for i, (image, thought) in enumerate(zip(images, thoughts)):
        alone = pipe([image], [thought], num_inference_steps=2, generator=[torch.Generator().manual_seed(i)])[0]
        assert np.abs(np.asarray(alone, dtype=int) - np.asarray(batched[i], dtype=int)).max() <= 1


@pytest.mark.parametrize("size", range(3, 9))
def test_every_size_works(pipe, size):
    image = _images([size])[0]
    out = pipe.sketch([image], ["Go up."], steps=1, generator=torch.Generator().manual_seed(0))
    assert out[0].size == image.size and out[0].mode == "RGB"


def test_bad_input_is_rejected_clearly(pipe):
    image = _images([4])[0]
    with pytest.raises(ValueError, match="2 previous images but 1 thoughts"):
        pipe([image, image], ["Go up."])
    with pytest.raises(ValueError, match="empty"):
        pipe([image], ["  "])
    with pytest.raises(ValueError, match="mode L"):
        pipe([image.convert("L")], ["Go up."])
    with pytest.raises(ValueError, match="multiples of 8"):
        pipe([image.resize((36, 36))], ["Go up."])
    with pytest.raises(TypeError, match="PIL"):
        pipe([np.zeros((32, 32, 3))], ["Go up."])
    with pytest.raises(ValueError, match="generators for"):
        pipe([image], ["Go up."], generator=[torch.Generator(), torch.Generator()])


def test_reference_sketchers_follow_the_protocol():
    problem = MAZE.generate(np.random.default_rng(3), 5)
    oracle = OracleSketcher(MAZE)
    plan = MAZE.parse_answer(problem.answer)
    out = oracle.sketch([problem.image], [f"Go {plan[0]}."])[0]
    assert MAZE.read(out) == MAZE.step(MAZE.initial_state(problem), plan[0])
    assert BlankSketcher().sketch([problem.image], ["Go up."]) == [None]


def test_attention_backend_is_reported(pipe):
    assert configure_attention(pipe.unet) == "none"  # the tiny preset has no attention layers
    base = build_pipeline("maze", "base", seed=0)
    assert configure_attention(base.unet) == "sdpa"  # no CUDA here: never xformers


def test_training_resumes_to_the_same_weights(tmp_path):
    common = dict(task="maze", steps=4, problems_per_size=3, checkpoint_every=2, change_weight=5.0, condition_noise=0.3)
    whole = train_sketcher(SketcherTrainConfig(out=str(tmp_path / "whole"), **common), progress=False)
    train_sketcher(SketcherTrainConfig(out=str(tmp_path / "parts"), stop_after=2, **common), progress=False)
    assert (tmp_path / "parts" / "checkpoints" / "checkpoint_2" / "complete").is_file()
    with pytest.raises(ValueError, match="--resume"):
        train_sketcher(SketcherTrainConfig(out=str(tmp_path / "parts"), **common), progress=False)
    parts = train_sketcher(SketcherTrainConfig(out=str(tmp_path / "parts"), resume=True, **common), progress=False)
    a, b = SketchPipeline.from_pretrained(whole), SketchPipeline.from_pretrained(parts)
    for (name, x), (_, y) in zip(a.unet.state_dict().items(), b.unet.state_dict().items()):
        assert torch.allclose(x, y, atol=1e-5), name
    log = [json.loads(line) for line in (tmp_path / "parts" / "training_log.jsonl").read_text().splitlines()]
    assert log[0]["step"] == 0 and log[-1]["step"] == 3
    assert json.loads((tmp_path / "whole" / "train_summary.json").read_text())["steps"] == 4
    assert not (tmp_path / "whole" / "checkpoints").exists()


def test_rollout_fidelity_of_the_oracle_is_perfect():
    row = rollout_fidelity(OracleSketcher(MAZE), "maze", 4, 6, steps=1)
    assert row.step_accuracy["value"] == 1.0 and row.rollout_accuracy["value"] == 1.0
    assert row.redundancy == 0.0 and row.v_steps == row.mean_length


def test_rollout_fidelity_on_an_mcq_task_rolls_over_its_stated_actions():
    from tasks.splits import generate_split

    mcq = tasks.get("maze-mcq-v0")
    row = rollout_fidelity(OracleSketcher(mcq), mcq.id, 4, 6, steps=1)
    stated = [len(p.actions) for p in generate_split(mcq, "test", 4, 6)]
    assert row.mean_length == sum(stated) / 6 and row.rollout_accuracy["value"] == 1.0


def test_fine_tuning_starts_from_the_given_sketcher(tmp_path):
    from imagegen.train import build_pipeline, init_weights

    common = dict(task="maze", steps=2, problems_per_size=3, change_weight=5.0)
    first = train_sketcher(SketcherTrainConfig(out=str(tmp_path / "first"), **common), progress=False)
    fresh = build_pipeline("maze", "tiny", seed=3)
    trained = SketchPipeline.from_pretrained(first)
    init_weights(fresh, trained)
    for name, tensor in trained.unet.state_dict().items():
        assert torch.equal(fresh.unet.state_dict()[name], tensor.float()), name
    with pytest.raises(ValueError, match="vocabulary differs"):
        init_weights(build_pipeline("minibehavior", "tiny"), trained)  # it also picks up and drops
    with pytest.raises(ValueError, match="not this preset's"):
        init_weights(build_pipeline("maze", "base"), trained)
    tuned = train_sketcher(SketcherTrainConfig(out=str(tmp_path / "tuned"), init_from=str(first), **common), progress=False)
    assert json.loads((tuned / "train_config.json").read_text())["init_from"] == str(first)


def test_load_sketcher_errors_name_the_choices(tmp_path):
    with pytest.raises(ValueError, match="neither a sketcher directory"):
        load_sketcher("sokoban")


def test_vot_eval_sketcher_card_has_a_table_per_task(tmp_path, capsys):
    from vot.cli import main

    out = train_sketcher(SketcherTrainConfig(task="maze", steps=2, problems_per_size=3, out=str(tmp_path / "s"),
                                             condition_noise=0.2), progress=False)
    assert main(["eval", "sketcher", str(out), "--task", "maze,maze-mcq", "--size", "3", "--steps", "1",
                 "--count", "2", "--card", "--out", str(tmp_path / "f.json")]) == 0
    card = (out / "README.md").read_text()
    assert "### maze-nav-v0: the navigation problems' gold plans" in card
    assert "### maze-mcq: the action sequences the MCQ problems state" in card
    assert "--condition-noise 0.2 " in card  # the training command reproduces the run
    assert set(json.loads((tmp_path / "f.json").read_text())) == {"maze", "maze-mcq"}


def test_a_sketcher_card_lists_every_warm_start_of_its_lineage(tmp_path):
    from imagegen.card import write_model_card

    def run(seed, out, parent=None):
        return {"environment": "maze-fill", "preset": "tiny", "steps": 100 * (seed + 1), "seed": seed, "out": out,
                "init_from": parent["out"] if parent else None, **({"parent": parent} if parent else {})}

    config = run(2, "c", run(1, "b", run(0, "a")))
    (tmp_path / "train_config.json").write_text(json.dumps(config))
    (tmp_path / "train_summary.json").write_text(json.dumps(
        {"steps": 300, "wall_seconds": 60.0, "device": "cpu", "parameters": {"unet": 1, "text_encoder": 1}}))
    card = write_model_card(tmp_path, {}, "vot eval sketcher x", "2026-12-03").read_text()
    assert "--steps 300 --seed 2 --init-from b --out " in card
    assert "`--init-from b`) from a sketcher trained with `vot train sketcher --task maze-fill --preset tiny --steps 200 --seed 1 --init-from a --out b`" in card
    assert "`--init-from a`) from a sketcher trained with `vot train sketcher --task maze-fill --preset tiny --steps 100 --seed 0 --out a`" in card


def test_perturb_condition_drifts_blocks_of_pixels_and_stays_in_range():
    prev = torch.zeros(8, 3, 24, 24)  # (B, 3, H, W)
    assert perturb_condition(prev, 0.0, torch.Generator().manual_seed(0)) is prev
    with pytest.raises(ValueError, match="condition_noise must be >= 0"):
        train_sketcher(SketcherTrainConfig(task="maze", steps=1, out="unused", condition_noise=-0.1), progress=False)
    a = perturb_condition(prev, 0.5, torch.Generator().manual_seed(0), block=4)
    b = perturb_condition(prev, 0.5, torch.Generator().manual_seed(0), block=4)
    assert torch.equal(a, b) and a.shape == prev.shape
    assert a.abs().max() <= 1 and a.abs().max() > 0.05
    strengths = a.flatten(1).std(1)  # (B,) one random strength per example
    assert strengths.max() > 2 * strengths.min()
    blocks = a.reshape(8, 3, 6, 4, 6, 4).mean(dim=(3, 5))  # (B, 3, 6, 6) per-block means
    assert blocks.std() > a.reshape(8, 3, 6, 4, 6, 4).std(dim=(3, 5)).mean() / 2  # a per-block offset, not only pixel noise


def test_output_levels_snap_sketches_to_the_palette_lattice_and_are_saved(pipe, tmp_path):
    images, thoughts = _images([3, 4]), ["Go up.", "Go left."]
    raw = pipe(images, thoughts, num_inference_steps=2, generator=[torch.Generator().manual_seed(i) for i in range(2)])
    snapped_pipe = SketchPipeline(pipe.unet, pipe.scheduler, pipe.text_encoder, pipe.tokenizer, default_steps=2, output_levels=3)
    snapped = snapped_pipe(images, thoughts, num_inference_steps=2, generator=[torch.Generator().manual_seed(i) for i in range(2)])
    for a, b in zip(raw, snapped):
        values = set(np.unique(np.asarray(b)).tolist())
        assert values <= {0, 128, 255}  # 127.5 rounds to 128
        expected = (np.round(np.asarray(a, dtype=np.float32) / 127.5) * 127.5).round()
        agree = (expected == np.asarray(b, dtype=np.float32)).mean()
        assert agree > 0.99  # the raw output rounded (pixels within 0.5 of a midpoint may round either way)
    snapped_pipe.save_pretrained(tmp_path)
    assert SketchPipeline.from_pretrained(tmp_path).output_levels == 3
    assert pipe.output_levels == 0
    with pytest.raises(ValueError, match="output_levels"):
        SketchPipeline(pipe.unet, pipe.scheduler, pipe.text_encoder, pipe.tokenizer, output_levels=1)
