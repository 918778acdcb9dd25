"""Self-improvement and distillation: filters keep the right chains without reading gold, rounds
run end to end on tiny budgets and resume, a distilled bundle loads, bad input is refused before
anything is written."""
import json
from dataclasses import replace

import pytest

import tasks
import vot
from tasks.splits import generate_split
from vot.chain import Chain, Step, read_problem_chains, write_problem_chains
from vot.cli import main
from vot.improve import ChainFilter, ImproveConfig, improve, majority, parse_filter

TASK = tasks.get("maze-mcq-v1")


def _chain(problem, answer, steps=None, sample=0):
    thoughts = [Step(f"Go {a}.") for a in (problem.actions if steps is None else steps)]
    return Chain(problem.id, problem.task, sample, thoughts + [Step(f"The answer is {answer}.", is_answer=True)], answer, True)


def test_filters_vote_length_gold_and_none():
    problem = generate_split(TASK, "train", 4, 1, 0)[0]
    blind = replace(problem, answer=None)
    wrong = next(letter for letter in "ABCD" if letter != problem.answer)
    pool = [_chain(problem, problem.answer, sample=i) for i in range(3)] + [_chain(problem, wrong, sample=3)]
    assert majority(pool) == (problem.answer, 0.75)
    assert [c.sample for c in ChainFilter("vote", 0.75).keep(blind, pool)] == [0]
    assert ChainFilter("vote", 0.8).keep(blind, pool) == []
    short = [_chain(problem, problem.answer, steps=problem.actions[:-1])] + pool[1:]
    assert [c.sample for c in ChainFilter("vote+length", 0.75).keep(blind, short)] == [1]
    assert [c.sample for c in ChainFilter("gold").keep(blind, [pool[3], pool[2]], problem)] == [2]
    assert [c.sample for c in ChainFilter("none").keep(blind, [pool[3], pool[0]])] == [3]
    for bad in ("vote+none", "magic", ""):
        with pytest.raises(ValueError, match="--filter"):
            parse_filter(bad)


def test_the_reward_filter_keeps_plans_the_simulator_accepts_without_the_gold_plan():
    nav = tasks.get("frozenlake-nav")
    problem = nav.from_layout(["SFF", "FHF", "FFG"])
    blind = replace(problem, answer=None)
    plans = {0: "The answer is: Go right. Go right. Go down. Go down.", 1: "The answer is: Go down. Go down. Go right. Go right.",
             2: "The answer is: Go right. Go down.", 3: "The answer is: Go down. Go right. Go right. Go down. Go up. Go down."}
    pool = [Chain(problem.id, problem.task, i, [Step(text, is_answer=True)], text, True) for i, text in plans.items()]
    kept = ChainFilter("reward").keep(blind, pool)
    assert [c.sample for c in kept] == [0]  # the first exact plan; the hole and the detour are rejected
    assert [c.sample for c in ChainFilter("reward").keep(blind, pool[1:])] == [1]
    assert ChainFilter("reward").keep(blind, pool[2:]) == []


def test_problem_chain_files_round_trip(tmp_path):
    reasoner = vot.load("maze", sketcher="oracle")
    problems = generate_split(TASK, "train", 3, 2, 0)
    pools = reasoner.run(problems, 1, greedy=True)
    write_problem_chains(tmp_path / "kept.jsonl", [(p, pool[0]) for p, pool in zip(problems, pools)])
    back = read_problem_chains(tmp_path / "kept.jsonl")
    assert [p.dumps() for p, _ in back] == [p.dumps() for p in problems]
    for (_, chain), pool in zip(back, pools):
        assert chain.thoughts == pool[0].thoughts
        assert [s.tobytes() for s in chain.sketches] == [s.tobytes() for s in pool[0].sketches]


def _tiny(out, **overrides):
    return ImproveConfig(**{**dict(task=TASK.id, start="maze", out=str(out), rounds=1, sizes=[4], n=2, problems_per_size=3,
                                   steps=2, gold_problems_per_size=4, eval_count=2, eval_sizes=[3, 4], sketcher="oracle",
                                   batch=8), **overrides})


def test_a_round_runs_end_to_end_and_resume_skips_it(tmp_path, monkeypatch):
    from vot.lm.policy import SmallPolicy

    seen = []  # every problem a policy starts a chain on: sampling (blind) and evaluation (test split)
    begin = SmallPolicy.begin

    def spy(self, problems, samples, **kwargs):
        seen.extend((p.id.split("/")[1] if "/" in p.id else "?", p.answer) for p in problems)
        return begin(self, problems, samples, **kwargs)

    monkeypatch.setattr(SmallPolicy, "begin", spy)
    out = improve(_tiny(tmp_path / "run"), log=lambda _: None)
    train_answers = [answer for split, answer in seen if split == "train"]
    assert train_answers and all(a is None for a in train_answers)  # the sampler never saw a gold answer
    record = json.loads((out / "round-1" / "round.json").read_text())
    assert record["sizes"] == [4] and record["problems"] == 3 and 1 <= record["kept"] <= 3
    assert set(record["test_accuracy"]) == {"3", "4"} and record["precision"]["n"] == record["kept"]
    rounds = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rounds] == [0, 1]
    assert (out / "accuracy.png").stat().st_size > 0 and "| 1 | [4] |" in (out / "README.md").read_text()
    kept = read_problem_chains(out / "round-1" / "kept.jsonl")
    assert kept and all(p.answer is None for p, _ in kept)
    from vot.components import build_reasoner

    [[chain]] = build_reasoner(TASK.id, policy=str(out / "round-1" / "policy"), sketcher="oracle").run([kept[0][0]], 1)
    assert chain.finished and chain.answer is not None
    with pytest.raises(ValueError, match="--resume"):
        improve(_tiny(tmp_path / "run"), log=lambda _: None)
    before = (out / "round-1" / "round.json").stat().st_mtime_ns
    improve(_tiny(tmp_path / "run", resume=True), log=lambda _: None)
    assert (out / "round-1" / "round.json").stat().st_mtime_ns == before  # finished rounds are not rerun


@pytest.mark.parametrize("argv,message", [
    (["improve", "--task", "maze", "--from", "maze", "--filter", "magic"], "--filter must be"),
    (["improve", "--task", "maze-nav", "--from", "maze", "--filter", "consistency"], "is a planning task"),
    (["improve", "--task", "maze", "--from", "maze", "--filter", "reward"], "not a planning task"),
    (["improve", "--task", "maze", "--from", "maze", "--rounds", "3", "--sizes", "7,8"], "need 3 sizes"),
    (["improve", "--task", "maze", "--from", "maze", "--rounds", "1", "--sizes", "40"], "takes sizes"),
    (["improve", "--task", "maze", "--from", "maze", "--sizes", "7,x"], "sizes must be integers"),
    (["improve", "--task", "maze", "--from", "nowhere"], "no bundle 'nowhere'"),
])
def test_bad_improve_input_is_one_line_and_writes_nothing(argv, message, tmp_path, capsys):
    out = tmp_path / "never"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_resume_with_other_settings_is_refused(tmp_path):
    improve(_tiny(tmp_path / "run"), log=lambda _: None)
    with pytest.raises(ValueError, match="other settings than .* \\(filter, n\\)"):
        improve(_tiny(tmp_path / "run", resume=True, filter="none", n=3), log=lambda _: None)


def test_chain_examples_match_gold_examples_and_get_their_share_of_batches(tmp_path):
    import numpy as np

    from vot.lm.model import PolicyModel
    from vot.lm.sequences import build_example, chain_example
    from vot.lm.train import PolicyTrainConfig, _batch, _bucket, add_chain_buckets

    model = PolicyModel.from_pretrained(vot.bundle.resolve("maze") / "policy")
    tokenizer, patch = model.tokenizer, model.spec.shape.patch
    problem = generate_split(TASK, "train", 4, 1, 0)[0]
    steps = [Step(s.thought, sketch=TASK.render(s.state) if s.action is not None else None, is_answer=s.action is None)
             for s in TASK.trace(problem, "visual")]
    gold_chain = Chain(problem.id, problem.task, 0, steps, problem.answer, True)
    a, b = build_example(problem, "vot", tokenizer, patch), chain_example(problem, gold_chain, tokenizer, patch)
    assert (a.ids, a.labels, a.answer) == (b.ids, b.labels, b.answer)
    assert all(np.array_equal(x, y) for x, y in zip(a.images, b.images))
    write_problem_chains(tmp_path / "kept.jsonl", [(problem, gold_chain)] * 3)
    gold = [build_example(p, "vot", tokenizer, patch) for p in generate_split(TASK, "train", 3, 30, 0)]
    data = {"3": _bucket(gold, tokenizer)}
    add_chain_buckets(data, PolicyTrainConfig(task=TASK.id, chains=[str(tmp_path / "kept.jsonl")], chain_share=0.25),
                      tokenizer, patch, lambda _: None)
    assert set(data) == {"3", "chains-4"} and len(data["chains-4"]) == 3
    widths = [_batch(data, np.random.default_rng(k), 1)[4].shape[-1] for k in range(400)]  # image side tells the bucket
    share = np.mean([w == TASK.render(TASK.initial_state(problem)).size[0] for w in widths])
    assert 0.18 < share < 0.32  # a quarter of the batches come from the 3 kept chains, not 3 in 33


def test_distill_writes_a_loadable_bundle_with_its_numbers(tmp_path):
    from vot.distill import DistillConfig, distill

    bundle = distill(DistillConfig(task=TASK.id, start="maze", out=str(tmp_path / "d"), n=2, sizes=[4], problems_per_size=3,
                                   steps=2, gold_problems_per_size=4, eval_count=2, eval_sizes=[4], sketcher="oracle",
                                   batch=8), log=lambda _: None)
    summary = json.loads((bundle / "distill.json").read_text())
    assert summary["selected"] <= summary["problems"] == 3
    assert set(summary["test"]["4"]) == {"teacher_greedy", "teacher_self_consistency@2", "distilled_greedy"}
    assert "## Distillation" in (bundle / "README.md").read_text()
    assert vot.load(bundle, sketcher="oracle").policy is not None
    with pytest.raises(ValueError, match="not empty"):
        distill(DistillConfig(task=TASK.id, start="maze", out=str(tmp_path / "d")), log=lambda _: None)


def test_distill_drops_the_selections_its_filter_rejects(tmp_path):
    """Under the gold control every kept selection is right, and the dropped ones are counted; a bad
    spec is refused before anything is written."""
    from vot.distill import DistillConfig, distill

    config = dict(task=TASK.id, start="maze", n=2, sizes=[11], problems_per_size=4, steps=1, gold_problems_per_size=2,
                  eval_count=1, eval_sizes=[4], sketcher="oracle", batch=8)
    kept = json.loads((distill(DistillConfig(**config, out=str(tmp_path / "all")), log=lambda _: None) / "distill.json").read_text())
    logged = []
    gold = json.loads((distill(DistillConfig(**config, filter="gold", out=str(tmp_path / "gold")), log=logged.append)
                       / "distill.json").read_text())
    assert kept["dropped"] == 0 and gold["selected"] + gold["dropped"] == kept["selected"] and gold["dropped"] > 0  # 11x11 is hard for it
    assert gold["selected"] == round(kept["precision"]["value"] * kept["selected"]) and gold["precision"]["value"] == 1.0
    assert f"({gold['dropped']} more dropped by the gold filter)" in logged[0]
    assert "filter accepted it" in (tmp_path / "gold" / "bundle" / "README.md").read_text()
    with pytest.raises(ValueError, match="--filter must be"):
        distill(DistillConfig(**config, filter="vote+tea", out=str(tmp_path / "bad")), log=lambda _: None)
    assert not (tmp_path / "bad").exists()


def test_rounds_and_distillation_reason_with_the_start_bundles_settings(tmp_path):
    """A walked-answer planning bundle keeps its answer reading, step budget and denoising steps
    through the rounds (which load a bare policy directory) and into the distilled bundle."""
    from vot.bundle import read_spec
    from vot.components import reasoning_settings
    from vot.distill import DistillConfig, distill

    settings = reasoning_settings("frozenlake-nav")
    assert settings["answer"] == "walked" and settings["max_steps"] == read_spec(vot.bundle.resolve("frozenlake-nav")).max_steps
    assert reasoning_settings(str(vot.bundle.resolve("frozenlake-nav") / "policy"))["answer"] == "written"  # a bare directory
    nav = tasks.get("frozenlake-nav")
    out = improve(ImproveConfig(task=nav.id, start="frozenlake-nav", out=str(tmp_path / "run"), rounds=1, sizes=[3], n=2,
                                problems_per_size=2, steps=1, gold_problems_per_size=2, eval_count=1, eval_sizes=[3],
                                sketcher="oracle", filter="none", batch=4), log=lambda _: None)
    kept = read_problem_chains(out / "round-1" / "kept.jsonl")
    assert kept and all(chain.meta.get("answer") == "walked" for _, chain in kept)
    bundle = distill(DistillConfig(task=nav.id, start="frozenlake-nav", out=str(tmp_path / "d"), strategy="best_of_n", n=2,
                                   sizes=[3], problems_per_size=2, steps=1, gold_problems_per_size=2, eval_count=1,
                                   eval_sizes=[3], sketcher="oracle", batch=4), log=lambda _: None)
    spec, teacher = read_spec(bundle), read_spec(vot.bundle.resolve("frozenlake-nav"))
    assert (spec.answer, spec.max_steps, spec.sketch_steps) == (teacher.answer, teacher.max_steps, teacher.sketch_steps)


def test_consistency_rounds_can_also_train_the_sketcher_on_verified_transitions(tmp_path):
    """--sketcher-steps: the kept chains' sketches (each verified, read back, rendered clean) become
    sketcher training data; the round's sketcher is fine-tuned on them and evaluated with."""
    import numpy as np

    from imagegen import load_sketcher
    from imagegen.data import load_transitions
    from vot.improve import verified_transitions

    config = _tiny(tmp_path / "run", filter="consistency", sketcher="default", sketcher_steps=2, sketcher_replay=2,
                   problems_per_size=4, n=2, eval_sizes=[4])
    out = improve(config, log=lambda _: None)
    record = json.loads((out / "round-1" / "round.json").read_text())
    assert record["sketcher"] == str(out / "round-1" / "sketcher")
    assert load_sketcher(record["sketcher"]) is not None
    kept = read_problem_chains(out / "round-1" / "kept.jsonl")
    saved = load_transitions(out / "round-1" / "transitions.npz")
    assert record["sketcher_transitions"] == sum(len(t) for t in saved.values())
    steps = [s for _, c in kept for s in c.steps if not s.is_answer]
    assert record["sketcher_transitions"] == len(steps) > 0  # every kept step was verified, so every one is data
    first = kept[0][1].steps[0]
    assert np.array_equal(saved[4].next[0], np.asarray(TASK.render(TASK.read(first.sketch))))
    assert saved[4].thoughts[0] == first.thought
    assert verified_transitions([]) == {}
    with pytest.raises(ValueError, match="needs a filter with consistency"):
        improve(_tiny(tmp_path / "other", filter="vote", sketcher="default", sketcher_steps=2), log=lambda _: None)


def test_transition_files_round_trip(tmp_path):
    import numpy as np

    from imagegen.data import Transitions, load_transitions, merge_transitions, save_transitions

    a = Transitions(np.zeros((2, 8, 8, 3), np.uint8), np.ones((2, 8, 8, 3), np.uint8), ["Go up.", "Go left."])
    b = Transitions(np.ones((1, 16, 16, 3), np.uint8), np.zeros((1, 16, 16, 3), np.uint8), ["Fill the dead ends."])
    save_transitions(tmp_path / "t.npz", {3: a, 5: b})
    back = load_transitions(tmp_path / "t.npz")
    assert sorted(back) == [3, 5] and back[3].thoughts == a.thoughts and np.array_equal(back[5].prev, b.prev)
    merged = merge_transitions([back, {3: a}])
    assert len(merged[3]) == 4 and len(merged[5]) == 1


def test_a_round_sharded_over_two_processes_matches_one(tmp_path):
    """accelerate launch: each process samples and evaluates every other problem; the main one
    gathers the chains in problem order, trains and writes, so the run is the single process's."""
    import os
    import subprocess
    import sys

    args = ["improve", "--task", TASK.id, "--from", "maze", "--rounds", "1", "--sizes", "4", "--n", "2", "--problems", "4",
            "--steps", "2", "--eval-count", "3", "--eval-sizes", "3,4", "--sketcher", "oracle", "--filter", "none"]
    single = tmp_path / "single"
    assert main([*args, "--out", str(single)]) == 0
    env = dict(os.environ, HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--num_cpu_threads_per_process", "1", "--main_process_port", "0", "-m", "vot", *args,
               "--out", str(tmp_path / "sharded")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("wrote ") == 1 and "over 2 processes" in done.stdout
    one, two = (json.loads((d / "round-1" / "round.json").read_text()) for d in (single, tmp_path / "sharded"))
    for key in ("problems", "sampled_chains", "kept", "precision", "sampled_accuracy", "by_size", "test_accuracy"):
        assert one[key] == two[key], key
    chains = [[(p.id, c.thoughts) for p, c in read_problem_chains(d / "round-1" / "kept.jsonl")] for d in (single, tmp_path / "sharded")]
    assert chains[0] == chains[1]


def test_a_killed_distillation_resumes_without_sampling_again(tmp_path):
    import shutil

    from vot.distill import DistillConfig, distill

    config = dict(task=TASK.id, start="maze", out=str(tmp_path / "d"), n=2, sizes=[3, 4], problems_per_size=2, steps=2,
                  gold_problems_per_size=4, eval_count=1, eval_sizes=[4], sketcher="oracle", batch=8)
    first = json.loads((distill(DistillConfig(**config), log=lambda _: None) / "distill.json").read_text())
    out = tmp_path / "d"
    selected = (out / "selected.jsonl").read_text()
    shutil.rmtree(out / "bundle"), shutil.rmtree(out / "policy")  # killed while training
    with (out / "selected.jsonl").open("a") as f:
        f.write('{"torn": ')  # and a size torn while written is cut back to the finished ones
    logged = []
    again = json.loads((distill(DistillConfig(**config, resume=True), log=logged.append) / "distill.json").read_text())
    assert logged[:2] == ["size 3: selected in an earlier run", "size 4: selected in an earlier run"]
    assert (out / "selected.jsonl").read_text() == selected
    assert (again["selected"], again["precision"]) == (first["selected"], first["precision"])
    with pytest.raises(ValueError, match="other settings than .*\\(n\\)"):
        distill(DistillConfig(**{**config, "n": 3}, resume=True), log=lambda _: None)
    retrained = []  # other training settings reuse the selection: nothing is sampled again
    third = json.loads((distill(DistillConfig(**{**config, "steps": 3, "chain_share": 0.25}, resume=True),
                                log=retrained.append) / "distill.json").read_text())
    assert retrained[:2] == logged[:2] and third["selected"] == first["selected"]
    assert (third["config"]["steps"], json.loads((out / "policy" / "train_config.json").read_text())["steps"]) == (3, 3)
