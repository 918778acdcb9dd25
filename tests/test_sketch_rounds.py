"""Planning variants whose visual chain imagines rounds before moving (`tasks.formats.SketchRounds`):
the gold chain, run through the reasoner with a perfect policy and the oracle sketcher, passes the
consistency verifier and solves the problem, and the variant's sketcher environment trains on it."""
import pytest

import tasks
from imagegen import OracleSketcher
from imagegen.data import build_transitions, thought_corpus
from tasks.splits import generate_split
from vot.policy import SimulatedPolicy
from vot.reasoner import Reasoner
from vot.verifiers import ConsistencyVerifier


@pytest.mark.parametrize("task_id,environment,size", [("frozenlake-nav-v1", "frozenlake-wave", 5),
                                                      ("minibehavior-nav-v1", "minibehavior-wave", 7),
                                                      ("maze-nav-v1", "maze-fill", 4)])
def test_the_gold_chain_passes_the_consistency_verifier_and_trains_a_sketcher_environment(task_id, environment, size):
    task = tasks.get(task_id)
    problems = generate_split(task, "test", size, 3, 0)
    chains = [pool[0] for pool in Reasoner(SimulatedPolicy(error_rate=0.0), OracleSketcher(task), max_steps=64,
                                            answer="walked").run(problems, 1)]
    for problem, chain in zip(problems, chains):
        assert any(s.thought == task.round_thought for s in chain.steps)
        assert ConsistencyVerifier().step_checks(problem, chain) == [None] * len(chain.steps)
        assert task.check(problem, chain.answer).correct
    assert task.round_thought in thought_corpus(environment)
    data = build_transitions(environment, [size], 3, seed=0)
    assert task.round_thought in data[size].thoughts and len(data[size]) == len(data[size].prev) == len(data[size].next)


@pytest.mark.parametrize("task_id,size", [("frozenlake-nav-v1", 5), ("minibehavior-nav-v1", 7)])
def test_the_procedure_verifier_rejects_a_legal_move_that_leaves_the_drawn_wave(task_id, size):
    from vot.chain import Chain, Step
    from vot.verifiers import ProcedureVerifier, get_verifier

    assert isinstance(get_verifier("procedure"), ProcedureVerifier)  # `vot bench --verifier procedure`
    task = tasks.get(task_id)
    checked = 0
    for problem in generate_split(task, "test", size, 6, 0):
        gold = Reasoner(SimulatedPolicy(error_rate=0.0), OracleSketcher(task), max_steps=64, answer="walked").run([problem], 1)[0][0]
        assert ProcedureVerifier().step_checks(problem, gold) == [None] * len(gold.steps)
        state = task.initial_state(problem)
        for k, step in enumerate(gold.steps):  # the first move with a legal alternative off the wave
            wanted = task.drawn_move(state)
            others = [d for d in ("up", "down", "left", "right") if d != wanted and task.is_valid(state, d)]
            if wanted in ("up", "down", "left", "right") and others:
                break
            state = task.imagine(state, step.thought) if task.is_sketch_thought(step.thought) else task.step(state, wanted)
        else:
            continue
        moved = task.step(state, others[0])
        detour = Chain(problem.id, task.id, steps=gold.steps[:k] + [Step(f"Go {others[0]}.", sketch=task.render(moved))])
        assert ConsistencyVerifier().step_checks(problem, detour)[k] is None  # legal, and drawn as made
        reason = ProcedureVerifier().step_checks(problem, detour)[k]
        assert reason is not None and repr(wanted) in reason
        assert ProcedureVerifier().step_scores(problem, detour)[:k] == [1.0] * k
        checked += 1
    assert checked >= 3
