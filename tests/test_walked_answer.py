"""``answer="walked"``: a planning chain answers the plan its thoughts walked (VPRL reads a plan off
the trajectory), the written answer is kept beside it, and multiple-choice chains are untouched."""
import json

import pytest

import tasks
import vot
from tasks.splits import generate_split
from vot.bench import BenchConfig, run_bench
from vot.chain import Chain, Step
from vot.components import build_reasoner
from vot.lm.model import PolicyModel
from vot.reasoner import Reasoner
from vot.policy import SimulatedPolicy
from imagegen import OracleSketcher

NAV = tasks.get("maze-nav-v1")


def _run(task_id: str, answer: str, count: int = 12):
    task = tasks.get(task_id)
    problems = generate_split(task, "test", 4, count, 0)
    reasoner = Reasoner(SimulatedPolicy(error_rate=0.6, seed=3), OracleSketcher(task), max_steps=64, answer=answer)
    return problems, [pool[0] for pool in reasoner.run(problems, 1)]


def test_walked_chains_answer_the_plan_their_thoughts_walked():
    problems, written = _run("maze-nav-v1", "written")
    _, walked = _run("maze-nav-v1", "walked")
    slipped = 0
    for problem, w, k in zip(problems, written, walked):
        assert [s.thought for s in w.steps] == [s.thought for s in k.steps]  # the same chain, only its answer differs
        plan = NAV.walked_plan([s.thought for s in k.steps if not s.is_answer])
        assert k.answer == NAV.answer_text(plan) and k.meta["answer"] == "walked"
        assert k.meta.get("written_answer", k.answer) == w.answer == k.steps[-1].thought
        slipped += "written_answer" in k.meta
    assert slipped  # the simulated policy slips at some answer steps alone; those chains differ
    right = [sum(NAV.check(p, c.answer).correct for p, c in zip(problems, chains)) for chains in (written, walked)]
    assert right[1] > right[0]


def test_fill_thoughts_walk_no_move():
    thoughts = ["Fill the dead ends.", "Fill the dead ends.", "Go up.", "Go left."]
    assert NAV.walked_plan(thoughts) == ["up", "left"]
    assert NAV.walked_plan([]) == [] and NAV.answer_text([]) == "The answer is: (no moves)."


def test_multiple_choice_chains_answer_what_they_write():
    _, written = _run("maze-mcq-v1", "written", 6)
    _, walked = _run("maze-mcq-v1", "walked", 6)
    same = lambda c: ([s.thought for s in c.steps], c.answer, c.meta)  # timings differ between runs
    assert [same(c) for c in written] == [same(c) for c in walked]


def test_a_rewound_chain_drops_the_answer_it_came_from():
    chain = Chain("p", NAV.id, 0, [Step("Go up."), Step("The answer is: Go down.", is_answer=True)],
                  "The answer is: Go up.", True, meta={"answer": "walked", "written_answer": "The answer is: Go down."})
    assert "answer" not in chain.fork(keep_steps=1).meta and "written_answer" not in chain.fork(keep_steps=1).meta
    assert chain.fork().meta["written_answer"] == "The answer is: Go down."


def test_training_on_a_walked_chain_teaches_its_walked_answer():
    from vot.lm.sequences import chain_example

    model = PolicyModel.from_pretrained(vot.bundle.resolve("frozenlake-nav") / "policy")
    problem = generate_split(tasks.get("frozenlake-nav-v0"), "train", 3, 1, 0)[0]
    lake = tasks.get(problem.task)
    steps = [Step(s.thought, sketch=lake.render(s.state) if s.action is not None else None, is_answer=s.action is None)
             for s in lake.trace(problem, "visual")]
    gold = steps[-1].thought
    steps[-1] = Step("The answer is: Go up.", is_answer=True)  # a wrong transcription of the walked moves
    as_written = Chain(problem.id, problem.task, 0, steps, "The answer is: Go up.", True)
    as_walked = Chain(problem.id, problem.task, 0, steps, gold, True, meta={"answer": "walked"})
    gold_chain = Chain(problem.id, problem.task, 0, steps[:-1] + [Step(gold, is_answer=True)], gold, True)
    encode = lambda c: chain_example(problem, c, model.tokenizer, model.spec.shape.patch).ids
    assert encode(as_walked) == encode(gold_chain) != encode(as_written)


def test_bundles_carry_the_answer_source_and_bad_values_are_refused(tmp_path):
    from vot.bundle import make_bundle, read_spec

    out = make_bundle(vot.bundle.resolve("frozenlake-nav") / "policy", tmp_path / "b", sketcher="oracle", answer="walked")
    assert read_spec(out).answer == "walked"
    assert build_reasoner(policy=str(out)).answer == "walked"
    assert build_reasoner(policy=str(out), answer="written").answer == "written"
    assert build_reasoner(policy=str(vot.bundle.resolve("maze"))).answer == "written"  # bundles written before the option
    assert vot.load("frozenlake-nav").answer == "walked"  # the shipped planning bundle answers its walked plans
    with pytest.raises(ValueError, match=r"answer \(--answer\) must be one of written, walked, got 'read'"):
        make_bundle(out / "policy", tmp_path / "c", answer="read")
    assert not (tmp_path / "c").exists()
    with pytest.raises(ValueError, match="must be one of written, walked"):
        run_bench(BenchConfig(task="frozenlake-nav-v0", policy="simulated", sketcher="oracle", answer="read",
                              out=str(tmp_path / "run")))
    assert not (tmp_path / "run").exists()


def test_bench_reports_the_written_answers_beside_the_walked_plans(tmp_path):
    out = tmp_path / "run"
    summary = run_bench(BenchConfig(task="maze-nav-v1", policy="simulated", sketcher="oracle", error_rate=0.6,
                                    strategies=["greedy"], sizes=[3, 4], count=12, answer="walked", seed=2, out=str(out)),
                        progress=False)
    greedy = summary["metrics"]["greedy@1"]
    assert greedy["written_answer_accuracy"]["value"] < greedy["accuracy"]["value"]
    assert json.loads((out / "config.json").read_text())["answer"] == "walked"


def test_the_consistency_verifier_checks_fill_sketches_and_walked_answers():
    from vot.verifiers import ConsistencyVerifier

    problems = generate_split(NAV, "test", 5, 4, 0)
    chains = [pool[0] for pool in Reasoner(SimulatedPolicy(error_rate=0.0), OracleSketcher(NAV), max_steps=64,
                                            answer="walked").run(problems, 1)]
    verifier = ConsistencyVerifier()
    for problem, chain in zip(problems, chains):
        assert any(s.thought.startswith("Fill") for s in chain.steps)
        assert verifier.step_checks(problem, chain) == [None] * len(chain.steps)  # fills are checked as imagined, not as moves
    chain = chains[0]
    fill = next(i for i, s in enumerate(chain.steps) if s.thought.startswith("Fill"))
    chain.steps[fill].sketch = problems[0].image  # a fill round drawn as no change at all
    assert "the sketch reads as" in verifier.step_checks(problems[0], chain)[fill]
    written = chain.fork()
    written.steps[-1] = Step("The answer is: Go up.", is_answer=True)  # a slip in the transcription only
    written.meta["written_answer"] = written.steps[-1].thought
    assert verifier.step_checks(problems[0], written)[-1] is None  # the walked answer is what is checked
    del written.meta["answer"]
    written.answer = written.steps[-1].thought
    assert verifier.step_checks(problems[0], written)[-1] == "the answer's plan differs from the moves the thoughts made"


def test_the_maze_nav_bundle_imagines_its_own_chains_on_v0_problems():
    """``vot bench maze-nav`` runs v0's problems (the same test set); the v1 bundle's sketches are
    still dead-end fills: the sketcher follows the policy's task, not the problem's."""
    from imagegen import PRETRAINED

    on_v0 = build_reasoner("maze-nav-v0", policy="default")
    assert on_v0.policy.model.spec.task == "maze-nav-v1" and on_v0.answer == "walked"
    assert str(on_v0.sketcher.name_or_path) == str(PRETRAINED / "maze-fill")
    assert build_reasoner("maze-nav-v0", policy="default", sketcher="oracle").sketcher.task.id == "maze-nav-v1"
    problems = generate_split(tasks.get("maze-nav-v0"), "test", 3, 6, 0)
    v0 = [c[0] for c in on_v0.run(problems, 1, greedy=True)]
    v1 = [c[0] for c in vot.load("maze-nav").run(generate_split(NAV, "test", 3, 6, 0), 1, greedy=True)]
    assert [c.answer for c in v0] == [c.answer for c in v1] and sum(NAV.check(p, c.answer).correct for p, c in zip(problems, v0)) >= 5
    from vot.verifiers import ConsistencyVerifier

    verifier = ConsistencyVerifier()
    assert all(c.task == "maze-nav-v1" for c in v0)  # each chain names the version it was imagined under
    for problem, chain in zip(problems, v0):  # so the verifier checks its fills by v1's rules, not as moves
        if NAV.check(problem, chain.answer).correct:
            assert "the thought names no action" not in verifier.step_checks(problem, chain)


def test_a_thought_that_fills_takes_no_move_everywhere():
    """One rule (`Task.is_sketch_thought`) says which thoughts draw without acting: the oracle, the
    walked plan and the verifier agree on a fill thought that also names a move."""
    from vot.verifiers import ConsistencyVerifier

    problem = generate_split(NAV, "test", 4, 1, 0)[0]
    odd = "Fill the dead ends. Go up."
    state = NAV.initial_state(problem)
    assert NAV.is_sketch_thought(odd) and NAV.imagine(state, odd) == NAV.imagine(state, "Fill the dead ends.")
    assert NAV.walked_plan([odd, "Go up."]) == ["up"]
    chain = Chain(problem.id, NAV.id, 0, [Step(odd, sketch=NAV.render(NAV.imagine(state, odd)))])
    assert ConsistencyVerifier().step_checks(problem, chain) == [None]
    assert not tasks.get("maze-nav-v0").is_sketch_thought("Fill the dead ends.")  # v0 has no such thought


def test_a_chain_that_walked_nothing_answers_what_it_wrote():
    """A direct policy writes its plan at once: walked reading leaves its answer alone."""
    problem = generate_split(NAV, "test", 3, 1, 0)[0]

    class Direct(SimulatedPolicy):
        def think(self, contexts):
            return [vot.policy.Thought(problem.answer, [0.0], True) for _ in contexts]

    [[chain]] = Reasoner(Direct(), OracleSketcher(NAV), answer="walked").run([problem], 1)
    assert chain.answer == problem.answer and not chain.answered_walked
