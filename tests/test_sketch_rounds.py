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
