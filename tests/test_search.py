"""Sketch-level search, compute-optimal allocation and problems without split ids, on the real
reference loop with a sketcher that errs (`SlipSketcher`, slips drawn from each sketch's noise)."""
import functools

import numpy as np
import pytest

import tasks
from imagegen.base import OracleSketcher, SlipSketcher
from tasks.metrics import rate
from tasks.splits import generate_split
from vision_encoder.base import PixelPatchEncoder
from vot.compute import CostModel
from vot.policy import SimulatedPolicy
from vot.reasoner import Reasoner, SketchSearch
from vot.strategies import run_strategy
from vot.verifiers import ConfidenceVerifier, ConsistencyVerifier

TASK = tasks.get("maze-mcq-v0")


def _reasoner(error_rate=0.1, slip=0.15):
    """A policy that answers what its last sketch shows, with a sketcher that slips."""
    policy = SimulatedPolicy(error_rate, seed=0, trust_sketches=True)
    return Reasoner(policy, SlipSketcher(TASK, slip), sketch_steps=4)


@functools.cache
def _problems(count=30):
    return tuple(p for size in (4, 5, 6) for p in generate_split(TASK, "test", size, count, 0))


def _accuracy(results, problems):
    return rate(r.answer is not None and TASK.check(p, r.answer).correct for p, r in zip(problems, results))


def test_one_candidate_is_no_search_and_more_candidates_redraw_only_rejected_sketches():
    problems = _problems(4)
    plain = _reasoner().run(problems, 2)
    same = _reasoner().run(problems, 2, search=SketchSearch(1, ConsistencyVerifier()))
    searched = _reasoner().run(problems, 2, search=SketchSearch(4, ConsistencyVerifier()))
    verifier = ConsistencyVerifier()
    for problem, a, b, c in zip(problems, plain, same, searched):
        for x, y, z in zip(a, b, c):
            assert x.thoughts == y.thoughts and x.compute.untimed() == y.compute.untimed()
            assert z.compute.sketches >= sum(not s.is_answer for s in z.steps)
            assert z.compute.denoising_steps == 4 * z.compute.sketches  # every draw is counted
            if x.thoughts == z.thoughts:  # same thoughts: the first draw of each step is the same sketch
                assert np.asarray(x.steps[0].sketch).tobytes() == np.asarray(z.steps[0].sketch).tobytes() or \
                    verifier.step_scores(problem, x)[0] == 0.0
                if verifier.step_scores(problem, x).count(0.0) == 0:
                    assert z.compute.sketches == x.compute.sketches  # nothing rejected: nothing redrawn
    extra = sum(c.compute.sketches for cs in searched for c in cs) - sum(c.compute.sketches for cs in plain for c in cs)
    assert extra > 0


def test_sketch_search_needs_a_verifier_that_reads_sketches():
    with pytest.raises(ValueError, match="checks sketches"):
        SketchSearch(2, ConfidenceVerifier())
    with pytest.raises(ValueError, match="positive integer"):
        SketchSearch(0, ConsistencyVerifier())


def test_sketch_search_buys_accuracy_where_sketches_fail():
    problems = _problems()
    greedy = _accuracy(run_strategy("greedy", problems, _reasoner(0.0, 0.15), ConsistencyVerifier()), problems)
    searched = _accuracy(run_strategy("sketch_search", problems, _reasoner(0.0, 0.15), ConsistencyVerifier(), n=4), problems)
    inside = _accuracy(run_strategy("greedy", problems, _reasoner(0.0, 0.15), ConsistencyVerifier(), sketch_candidates=4), problems)
    assert searched.value == inside.value  # the strategy is greedy with the setting
    assert searched.value >= greedy.value + 0.08 and searched.value >= 0.97, (greedy, searched)


def test_compute_optimal_keeps_to_its_budget_and_matches_best_of_n_for_less():
    problems = _problems()
    costs = CostModel(1.0, 1.0)
    greedy = run_strategy("greedy", problems, _reasoner(), ConsistencyVerifier())
    unit = np.mean([costs.cost(r.compute) for r in greedy])
    best = run_strategy("best_of_n", problems, _reasoner(), ConsistencyVerifier(), n=16)
    optimal = run_strategy("compute_optimal", problems, _reasoner(), ConsistencyVerifier(), n=16, budget=4.0)
    spent = np.mean([costs.cost(r.compute) for r in optimal])
    assert spent <= 4.0 * unit * 1.1  # the budget, up to one round's estimate
    assert np.mean([costs.cost(r.compute) for r in best]) >= 3 * spent
    assert _accuracy(optimal, problems).value >= _accuracy(best, problems).value - 0.02
    assert _accuracy(optimal, problems).value > _accuracy(greedy, problems).value
    used = [r.chains_used for r in optimal]
    assert min(used) == 2 and max(used) > 2  # easy problems stop after the probe, hard ones get more


def test_problems_without_split_ids_get_content_ids_and_strategies_keep_them_apart():
    lake = tasks.get("frozenlake-mcq-v0")
    built = [lake.from_layout(["SFF", "FHF", "FFG"], actions) for actions in
             (["right", "right", "down", "down"], ["down", "right"], ["right", "down", "left"])]
    again = lake.from_layout(["SFF", "FHF", "FFG"], ["down", "right"])
    ids = [p.id for p in built]
    assert len(set(ids)) == 3 and all(i.startswith("frozenlake-mcq-v0/content/") for i in ids) and again.id == ids[1]
    reasoner = Reasoner(SimulatedPolicy(0.3, seed=0), OracleSketcher(lake))
    twice = built + [built[0]]  # the same problem twice in one call: still one result each
    for name, settings in [("beam", {"n": 4, "width": 2}), ("dvts", {"n": 4, "width": 2}), ("adaptive", {"n": 4, "window": 2}),
                           ("refine", {"n": 2}), ("compute_optimal", {"n": 4, "sketch_candidates": 1})]:
        results = run_strategy(name, twice, reasoner, ConsistencyVerifier(), **settings)
        assert [r.problem_id for r in results] == [p.id for p in twice], name
        for problem, result in zip(twice, results):
            assert all(c.problem_id == problem.id for c in result.chains)
            if result.answer is not None:
                assert lake.parse_answer(result.answer) in problem.options
    sampled = reasoner.run(built, 2)
    assert len({tuple(c.thoughts) + (c.answer,) for cs in sampled for c in cs}) > 1
