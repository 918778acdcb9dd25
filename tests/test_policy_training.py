"""``vot train policy``: a tiny run end to end, resuming, learning, and bundles around the result."""
import json

import numpy as np
import pytest
import torch

import tasks
import vot
from tasks.splits import generate_split
from vot.bundle import BundleSpec, load, make_bundle
from vot.lm.card import write_card
from vot.lm.model import PolicyModel
from vot.lm.train import PolicyTrainConfig, sketcher_rollouts, train_policy

TINY = dict(hidden=32, layers=1, heads=2, kv_heads=1, vision_hidden=16, vision_layers=1, vision_heads=2)


def _config(out, **changes):
    values = dict(task="maze-mcq-v0", mode="vot", out=str(out), steps=6, problems_per_size=6, eval_every=100,
                  eval_count=1, checkpoint_every=3, shape=TINY, batch_size=4, sketcher_share=0.5)
    return PolicyTrainConfig(**(values | changes))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("policy") / "run"
    train_policy(_config(out), progress=False)
    return out


def test_a_run_writes_weights_tokenizer_and_logs(trained):
    names = {p.name for p in trained.iterdir()}
    assert {"model.safetensors", "policy.json", "tokenizer.json", "training_log.jsonl", "train_config.json",
            "train_summary.json"} <= names
    assert "checkpoints" not in names  # removed once the final weights are saved
    records = [json.loads(line) for line in (trained / "training_log.jsonl").read_text().splitlines()]
    assert any("val_accuracy" in r for r in records)  # periodic evaluation through the loop
    assert any(r.get("event") == "sketcher_rollouts" and r["problems"] > 0 for r in records)
    model = PolicyModel.from_pretrained(trained)
    assert model.spec.task == "maze-mcq-v0" and model.spec.mode == "vot"


def test_stopped_and_resumed_equals_uninterrupted(tmp_path, trained):
    out = tmp_path / "resumed"
    train_policy(_config(out, stop_after=3), progress=False)
    assert (out / "checkpoints" / "checkpoint_3" / "complete").is_file() and not (out / "model.safetensors").exists()
    train_policy(_config(out, resume=True), progress=False)
    a, b = PolicyModel.from_pretrained(trained).state_dict(), PolicyModel.from_pretrained(out).state_dict()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_early_stop_once_validation_reaches_the_target(tmp_path):
    out = tmp_path / "early"
    train_policy(_config(out, mode="direct", eval_every=2, stop_at_accuracy=0.0), progress=False)
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 2 and summary["planned_steps"] == 6 and summary["early_stop"] == 0.0
    records = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r.get("event") == "early_stop"] == [2]
    assert all(r["step"] <= 1 for r in records if "loss" in r)  # no optimizer step after the stop
    card = write_card(make_bundle(out, tmp_path / "bundle")).read_text()
    assert "stopped early** at step 2 of 6" in card and "--stop-at-accuracy 0.0" in card
    assert "--index-shift-share" not in card  # the default


def test_card_commands_of_runs_from_before_a_flag_state_what_they_ran_with():
    from vot.lm.card import _extra_flags

    assert _extra_flags({"eval_every": 250}) == " --eval-every 250 --index-shift-share 0.0"  # no key: trained unshifted
    assert _extra_flags({"eval_every": 250, "index_shift_share": 0.5}) == " --eval-every 250"
    assert _extra_flags({"index_shift_share": 0.5, "seed": 1, "problems_per_size": 1000}) == \
        " --seed 1 --problems-per-size 1000"  # what it takes to reproduce the run


def test_refuses_to_overwrite_a_run(trained):
    with pytest.raises(ValueError, match="--resume"):
        train_policy(_config(trained), progress=False)


@pytest.mark.parametrize("mode", ["cot", "direct"])
def test_text_modes_learn(tmp_path, mode):
    out = tmp_path / mode
    train_policy(_config(out, mode=mode, steps=100, eval_every=1000, problems_per_size=16, batch_size=8), progress=False)
    losses = [json.loads(line)["loss"] for line in (out / "training_log.jsonl").read_text().splitlines()
              if '"loss"' in line]
    assert losses[-1] < 0.6 * losses[0]


def test_sketcher_rollouts_condition_each_sketch_on_the_previous_one():
    from imagegen import OracleSketcher

    task = tasks.get("maze-mcq-v0")
    problems = generate_split(task, "train", 4, 3, 0)
    rollouts = sketcher_rollouts(problems, OracleSketcher(task), seed=0)
    for problem, sketches in zip(problems, rollouts):
        gold = [s for s in task.trace(problem, "visual") if s.action is not None]
        assert len(sketches) == len(gold)
        assert [task.read(i) for i in sketches] == [s.state for s in gold]


def test_bundles_load_from_a_path_and_run(tmp_path, trained):
    bundle = make_bundle(trained, tmp_path / "bundle", sketcher="oracle")
    spec = json.loads((bundle / "bundle.json").read_text())
    assert spec["task"] == "maze-mcq-v0" and spec["format"] == "vot.bundle/1"
    reasoner = vot.load(bundle, max_steps=3)
    problem = generate_split("maze-mcq-v0", "test", 3, 1)[0]
    chains = reasoner.run([problem], n=2)[0]
    assert len(chains) == 2 and all(c.steps for c in chains)
    assert reasoner.label.startswith("small-vot+oracle")
    with pytest.raises(FileExistsError):
        make_bundle(trained, bundle)


def test_bundle_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="no bundle 'sokoban'"):
        load("sokoban")
    (tmp_path / "bad").mkdir()
    BundleSpec("maze-mcq-v0").save(tmp_path / "bad")
    record = json.loads((tmp_path / "bad" / "bundle.json").read_text()) | {"format": "other/9"}
    (tmp_path / "bad" / "bundle.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="format"):
        load(tmp_path / "bad")
    with pytest.raises(FileNotFoundError, match="no bundle.json"):
        load(tmp_path)


def test_vot_bundle_command_writes_a_card(tmp_path, trained, capsys):
    from vot.cli import main

    assert main(["bundle", str(trained), "--out", str(tmp_path / "b"), "--sketcher", "oracle"]) == 0
    card = (tmp_path / "b" / "README.md").read_text()
    assert "maze-mcq-v0 (vot mode)" in card and "greedy validation accuracy" in card
    assert json.loads((tmp_path / "b" / "bundle.json").read_text())["max_steps"] == 64
    assert main(["bundle", str(trained), "--out", str(tmp_path / "c"), "--max-steps", "128"]) == 0
    assert json.loads((tmp_path / "c" / "bundle.json").read_text())["max_steps"] == 128
    assert main(["bundle", str(trained), "--out", str(tmp_path / "d"), "--max-steps", "0"]) != 0
    assert "--max-steps must be a positive integer" in capsys.readouterr().err and not (tmp_path / "d").exists()


def test_each_trainer_takes_only_its_own_flags(capsys):
    from vot.cli import build_parser, main

    for argv, flag in ((["train", "sketcher", "--task", "maze", "--mode", "cot"], "--mode cot"),
                       (["train", "verifier", "--task", "maze", "--preset", "base"], "--preset base"),
                       (["train", "policy", "--task", "maze-mcq-v0", "--condition-noise", "0.1"], "--condition-noise 0.1")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"unrecognized arguments: {flag}" in err and len(err.strip().splitlines()) == 1
    args = build_parser().parse_args(["train", "policy", "--task", "maze-mcq-v0", "--steps", "3"])
    assert (args.what, args.mode, args.steps, args.index_shift_share) == ("policy", "vot", 3, 0.5)
    args = build_parser().parse_args(["train", "sketcher", "--task", "maze", "--condition-noise", "0.2"])
    assert (args.what, args.condition_noise, args.problems_per_size) == ("sketcher", 0.2, 1000)
    assert main(["train", "verifier", "--task", "maze", "--sizes", "3,x"]) == 2
    assert "sizes must be integers" in capsys.readouterr().err


def test_an_unfinished_run_can_be_exported(tmp_path):
    out = tmp_path / "cut"
    train_policy(_config(out, stop_after=3), progress=False)
    from vot.cli import main

    assert main(["train", "policy", "--task", "maze-mcq-v0", "--out", str(out), "--export"]) == 0
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 3 and summary["planned_steps"] == 6
    assert PolicyModel.from_pretrained(out).spec.task == "maze-mcq-v0"


def test_canvas_padding_gives_larger_token_grids_that_match_their_slots(tmp_path):
    from vot.lm.sequences import corpus
    from vot.lm.tokenizer import WordTokenizer
    from vot.lm.model import PolicyShape, PolicySpec
    from vot.lm.train import _batch, build_data, training_problems

    config = _config(tmp_path / "unused", sketcher=None, canvas_share=0.7, problems_per_size=12)
    task = tasks.get(config.task)
    tokenizer = WordTokenizer.train(corpus(generate_split(task, "train", 3, 4)) + corpus(generate_split(task, "train", 6, 4)))
    data = build_data(config, tokenizer, 16, training_problems(config, 12), lambda record: None)
    assert {"3", "3+1", "3+2"} <= set(data) and sum(len(b) for b in data.values()) == 12 * len(task.in_distribution)
    assert data["3+2"].canvas == 32 + 2 * 16 and data["3"].canvas == 0  # 24-px images: 2x2 tokens, padded to 4x4
    model = PolicyModel(PolicySpec(task.id, "vot", PolicyShape(**TINY)), tokenizer)
    rng = np.random.default_rng(0)
    for key in ("3+2", "3"):
        ids, segments, mask, labels, pixels, weights, exact, positions = _batch({key: data[key]}, rng, 3)
        assert positions is None  # no gaps asked for: the decoder's contiguous positions
        assert pixels.shape[-1] == (data[key].canvas or 24)  # unpadded 24-px images: the encoder pads to 32
        assert int((ids == -1).sum()) == pixels.shape[0] * (-(-pixels.shape[-1] // 16)) ** 2  # slots == vision tokens
        assert torch.isfinite(model(ids, segments, mask, labels, pixels, weights))


def test_warm_start_copies_matching_tensors_and_shared_token_rows(trained):
    from vot.lm.model import PolicyShape, PolicySpec
    from vot.lm.sequences import corpus
    from vot.lm.tokenizer import WordTokenizer
    from vot.lm.train import warm_start

    source = PolicyModel.from_pretrained(trained)  # a maze policy
    tokenizer = WordTokenizer.train(corpus(generate_split("frozenlake-mcq-v0", "train", 4, 4)))
    model = PolicyModel(PolicySpec("frozenlake-mcq-v0", "vot", PolicyShape(**TINY)), tokenizer)
    report = warm_start(model, trained)
    assert report["skipped"] == [] and report["tensors"] > 10
    name = "decoder.model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(model.state_dict()[name], source.state_dict()[name])
    embed = "decoder.model.embed_tokens.weight"
    for word in ("Go", "left", "The", "<eot>"):  # words both tasks' tokenizers know, at different ids
        new_id, old_id = tokenizer.tokenizer.token_to_id(word), source.tokenizer.tokenizer.token_to_id(word)
        assert torch.equal(model.state_dict()[embed][new_id], source.state_dict()[embed][old_id])
    assert report["embedding_rows"] < report["vocabulary"]  # frozenlake words the maze vocabulary lacks stay fresh


def test_index_shift_renumbers_index_tokens_and_segments_together():
    from vot.lm.sequences import build_example, corpus
    from vot.lm.tokenizer import MAX_INDEX, WordTokenizer
    from vot.lm.train import shift_indices

    problems = generate_split("maze-mcq-v0", "train", 4, 6)
    tokenizer = WordTokenizer.train(corpus(problems))
    examples = [build_example(p, "vot", tokenizer, 16) for p in problems]
    width = max(len(e.ids) for e in examples)
    ids = np.zeros((len(examples), width), dtype=np.int64)
    for row, example in enumerate(examples):
        ids[row, :len(example.ids)] = example.ids
    segments = np.array([tokenizer.segments(row) for row in ids])
    shifted, shifted_segments = shift_indices(ids, segments, np.random.default_rng(0), 1.0, tokenizer.indices)
    assert (shifted_segments != segments).any(axis=1).all()  # share 1.0: every row moves
    for row in range(len(ids)):
        offset = int(shifted_segments[row].max() - segments[row].max())
        assert 1 <= offset and shifted_segments[row].max() <= MAX_INDEX
        assert (shifted_segments[row] == np.where(segments[row] > 0, segments[row] + offset, 0)).all()
        # the segments the tokenizer derives from the renumbered ids are the shifted ones
        assert tokenizer.segments(shifted[row]) == shifted_segments[row].tolist()
        moved = shifted[row] != ids[row]
        assert set(ids[row][moved]) <= set(tokenizer.indices) and (ids[row][~moved] >= -1).all()
    unchanged, _ = shift_indices(ids, segments, np.random.default_rng(0), 0.0, tokenizer.indices)
    assert (unchanged == ids).all()


def test_position_gaps_fall_only_before_index_tokens_and_reach_the_decoder():
    from vot.lm.model import PolicyShape, PolicySpec
    from vot.lm.sequences import build_example, corpus
    from vot.lm.tokenizer import WordTokenizer
    from vot.lm.train import gap_positions

    problems = generate_split("maze-mcq-v0", "train", 4, 8)
    tokenizer = WordTokenizer.train(corpus(problems))
    examples = [build_example(p, "vot", tokenizer, 16) for p in problems]
    width = max(len(e.ids) for e in examples)
    ids = np.full((len(examples), width), tokenizer.pad, dtype=np.int64)
    for row, example in enumerate(examples):
        ids[row, :len(example.ids)] = example.ids
    positions = gap_positions(ids, np.random.default_rng(3), 50, tokenizer.indices)
    steps = np.diff(positions, axis=1)  # (B, L - 1)
    is_index = np.isin(ids[:, 1:], tokenizer.indices)
    assert (steps[~is_index] == 1).all()  # thoughts, sketches and prompt keep contiguous positions
    assert (steps[is_index] >= 1).all() and (steps[is_index] <= 51).all()
    gapped = (positions[:, -1] > width - 1)
    assert 0 < gapped.sum() < len(ids)  # about half the rows: the runtime's contiguous layout stays trained
    assert (positions[~gapped] == np.arange(width)).all()

    torch.manual_seed(0)
    model = PolicyModel(PolicySpec("maze-mcq-v0", "direct", PolicyShape(**TINY)), tokenizer).eval()
    for name, weight in model.decoder.named_parameters():  # sharp attention: a random init's is near uniform
        if name.endswith(("q_proj.weight", "k_proj.weight")):
            weight.data *= 50
    text = torch.from_numpy(np.where(ids < 0, tokenizer.pad, ids))[:2]  # (2, L) no image slots
    zeros, mask, labels = torch.zeros_like(text), torch.ones_like(text), text.clone()
    with torch.no_grad():
        plain = model(text, zeros, mask, labels, None)
        shifted = model(text, zeros, mask, labels, None, positions=torch.arange(width)[None].repeat(2, 1) + 100)
        gaps = model(text, zeros, mask, labels, None, positions=torch.from_numpy(positions[:2] * 3))
    assert torch.allclose(plain, shifted, atol=1e-4)  # rotary attention: only distances matter
    assert not torch.allclose(plain, gaps, atol=1e-4)  # the position ids reach the decoder


def test_a_warm_started_run_records_and_cards_its_lineage(tmp_path, trained):
    out = tmp_path / "warm"
    train_policy(_config(out, mode="vot", steps=2, sketcher=None, init_from=str(trained)), progress=False)
    config = json.loads((out / "train_config.json").read_text())
    assert config["parent"]["out"] == str(trained) and config["parent"]["steps"] == 6
    card = write_card(make_bundle(out, tmp_path / "bundle")).read_text()
    assert f"its `--init-from` {trained} was trained with `vot train policy --task maze-mcq-v0" in card
    card = write_card(make_bundle(out, tmp_path / "walked", sketcher="oracle", max_steps=128, answer="walked")).read_text()
    assert f"--out {tmp_path / 'walked'} --sketcher oracle --max-steps 128 --answer walked`" in card


def test_a_size_with_no_sketcher_rollouts_chosen_gives_none():
    """A small --problems-per-size can leave a size with no problem drawn for sketcher rollouts."""
    from vot.lm.train import sketcher_rollouts

    assert sketcher_rollouts([], sketcher=None, seed=0) == []


def test_card_names_the_improve_run_of_a_policy_trained_on_kept_chains(tmp_path):
    """A round of `vot improve` trains through the same trainer with ``chains``: the card gives the
    improve command (not a `vot train policy` line that would not reproduce it) and the chains read."""
    from vot.lm.card import _how

    run = tmp_path / "runs" / "improve"
    (run / "round-2").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"command": "vot improve --task maze --from maze --rounds 2"}))
    chains = [str(run / "round-1" / "kept.jsonl"), str(run / "round-2" / "kept.jsonl")]
    how = _how({"task": "maze-mcq-v1", "mode": "vot", "steps": 300, "chains": chains, "chain_share": 0.25})
    assert how.startswith("round-2 of `vot improve --task maze --from maze --rounds 2`")
    assert "25% of the batches" in how and all(c in how for c in chains) and "vot train policy" not in how
    assert _how({"task": "maze-mcq-v1", "mode": "vot", "preset": "tiny", "steps": 5, "out": "o"}).startswith("`vot train policy")


def test_a_card_command_keeps_the_shape_flags():
    from vot.lm.card import _command

    config = {"task": "maze-nav-v1", "mode": "vot", "preset": "tiny", "steps": 5, "out": "o",
              "index_shift_share": 0.5, "shape": {"patch": 8, "perception_edges": True}}
    assert _command(config).endswith(" --steps 5 --edge-perception --patch 8 --out o")
    assert " --patch" not in _command(config | {"shape": {"patch": 16}})
    with_context = config | {"shape": {"patch": 8, "perception_edges": True, "perception_context": True}}
    assert _command(with_context).endswith(" --edge-perception --context-perception --patch 8 --out o")


def test_validation_of_a_planning_policy_also_scores_the_plans_its_chains_walked():
    import tasks
    import vot
    from tasks.splits import generate_split
    from vot.lm.model import PolicyModel
    from vot.lm.train import evaluate_policy

    model = PolicyModel.from_pretrained(vot.bundle.resolve("maze-nav") / "policy")
    problems = generate_split(tasks.get("maze-nav-v1"), "val", 4, 6, 0)
    result = evaluate_policy(model, problems)
    assert result["problems"] == 6 and result["walked_accuracy"] >= 4 / 6  # the shipped bundle walks 100% at size 4
    assert result["walked_accuracy"] >= result["accuracy"]  # the transcription only loses moves
    mcq = PolicyModel.from_pretrained(vot.bundle.resolve("maze") / "policy")
    assert "walked_accuracy" not in evaluate_policy(mcq, generate_split(tasks.get("maze-mcq-v1"), "val", 3, 2, 0))


def test_perception_targets_come_only_from_exact_renders():
    """A sketcher's drawing is input to the policy but not a perception target: a cell mean near a
    lattice threshold flips under a drawing's small errors (shipped maze-nav on its own best-of-16
    chains: 6.3 mean loss, all of it perception; 0.08 without)."""
    import numpy as np
    import torch

    import tasks
    from tasks.splits import generate_split
    from vot.chain import Chain, Step
    from vot.lm.sequences import build_example, chain_example
    from vot.lm.train import _batch, _bucket

    task = tasks.get("maze-mcq-v0")
    problem = generate_split(task, "train", 3, 1, 0)[0]
    model = PolicyModel.from_pretrained(vot.bundle.resolve("maze-mcq-v0") / "policy").eval()
    tokenizer = model.tokenizer
    gold = build_example(problem, "vot", tokenizer, 16)
    steps = [s for s in task.trace(problem, "visual")]
    drawn = build_example(problem, "vot", tokenizer, 16, sketches=[task.render(s.state) for s in steps if s.action])
    chain = Chain(problem.id, problem.task, 0, [Step(s.thought, sketch=task.render(s.state) if s.action else None,
                                                     is_answer=s.action is None) for s in steps], problem.answer, True)
    assert gold.exact == [True] * len(gold.images)
    assert drawn.exact == chain_example(problem, chain, tokenizer, 16).exact == [True] + [False] * (len(gold.images) - 1)
    *batch, exact, _ = _batch({"3": _bucket([drawn], tokenizer)}, np.random.default_rng(0), 1)
    assert exact.tolist() == drawn.exact
    with torch.no_grad():
        every, inputs_only = model(*batch, torch.ones_like(exact)), model(*batch, torch.zeros_like(exact))
    assert float(every) > float(inputs_only) > 0  # the perception term is dropped where no image is exact


def test_a_run_trains_on_the_sizes_it_is_given_and_its_card_says_so(tmp_path):
    from vot.lm.card import _command
    from vot.lm.train import build_data, training_problems, training_sizes
    from vot.lm.sequences import corpus
    from vot.lm.tokenizer import WordTokenizer

    config = _config(tmp_path / "unused", sketcher=None, sizes=[4], problems_per_size=3)
    task = tasks.get(config.task)
    assert training_sizes(config) == (4,) and training_sizes(_config(tmp_path / "x")) == task.in_distribution
    tokenizer = WordTokenizer.train(corpus(generate_split(task, "train", 4, 4)))
    assert set(build_data(config, tokenizer, 16, training_problems(config, 3), lambda record: None)) == {"4"}
    assert " --sizes 4,5 " in _command({"task": task.id, "mode": "vot", "preset": "tiny", "steps": 5, "sizes": [4, 5], "out": "o"})
    with pytest.raises(ValueError, match="size must be an integer"):
        train_policy(_config(tmp_path / "bad", sizes=[99]), progress=False)
    with pytest.raises(ValueError, match="distinct train problems"):
        train_policy(_config(tmp_path / "bad", task="maze-nav-v0", sizes=[2], problems_per_size=50), progress=False)
    assert not (tmp_path / "bad").exists()  # refused before anything was written
