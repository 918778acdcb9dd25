"""Test-time strategies: one signature, every config field used, clear errors, and a small
statistical acceptance check, all with the real reference loop (SimulatedPolicy + OracleSketcher)."""
import functools
from dataclasses import fields, replace

import pytest

import tasks
from imagegen.base import OracleSketcher, SlipSketcher
from tasks.metrics import rate
from tasks.splits import generate_split
from vision_encoder.base import PixelPatchEncoder
from vot.policy import SimulatedPolicy
from vot.reasoner import Reasoner
from vot.strategies import STRATEGIES, Result, beam, dvts, make_config, refine, run_strategy
from vot.verifiers import ConfidenceVerifier, ConsistencyVerifier, OracleVerifier, VoteVerifier

TASK = tasks.get("maze-mcq-v0")


def _reasoner(error_rate=0.3, seed=0, slip=0.0):
    sketcher = SlipSketcher(TASK, slip) if slip else OracleSketcher(TASK)
    return Reasoner(SimulatedPolicy(error_rate, seed=seed), sketcher, sketch_steps=2)


@functools.cache
def _problems(sizes=(3, 4), count=6):
    return tuple(p for size in sizes for p in generate_split(TASK, "test", size, count, 0))


def _counting_reasoner():
    """A reasoner that counts the steps it takes (to show an error came before any work)."""
    reasoner = _reasoner()
    steps = []
    reasoner.on_step(lambda chain, step: steps.append(step))
    return reasoner, steps


SMALL = {  # settings that keep each strategy cheap
    "greedy": {}, "best_of_n": {"n": 3}, "weighted_best_of_n": {"n": 3}, "self_consistency": {"n": 3},
    "beam": {"n": 4, "width": 2}, "dvts": {"n": 4, "width": 2}, "refine": {"n": 2}, "adaptive": {"n": 6, "window": 2},
    "sketch_search": {"n": 2}, "compute_optimal": {"n": 4, "sketch_candidates": 2},
}
VOTING = {"greedy": "none", "self_consistency": "vote", "adaptive": "vote"}  # strategies that ignore the verifier
SEARCHES_SKETCHES = {"sketch_search", "compute_optimal"}  # need a verifier that checks sketches (consistency)


def test_every_strategy_has_small_settings():
    assert set(SMALL) == set(STRATEGIES)


@pytest.mark.parametrize("verifier_type", [ConsistencyVerifier, ConfidenceVerifier])
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_runs_and_labels_its_verifier(name, verifier_type):
    problems = _problems((3, 4), 2)
    verifier = verifier_type()
    if name in SEARCHES_SKETCHES and not verifier.checks_sketches:
        reasoner, steps = _counting_reasoner()
        with pytest.raises(ValueError, match="sketch search needs a verifier that checks sketches"):
            run_strategy(name, problems, reasoner, verifier, **SMALL[name])
        assert steps == []
        return
    results = run_strategy(name, problems, _reasoner(), verifier, **SMALL[name])
    assert len(results) == len(problems)
    n = SMALL[name].get("n", 1)
    for problem, result in zip(problems, results):
        assert isinstance(result, Result)
        assert result.problem_id == problem.id and result.strategy == name and result.n == n
        assert result.verifier == VOTING.get(name, verifier.label)
        assert result.chains and all(c.problem_id == problem.id for c in result.chains)
        assert result.selected is not None and 0 <= result.selected < len(result.chains)
        assert result.answer == result.chains[result.selected].answer
        assert result.chains_used >= len(result.chains)
        kept = sum(c.compute.policy_tokens for c in result.chains)
        assert result.compute.policy_tokens >= kept > 0
        if name in ("greedy", "best_of_n", "weighted_best_of_n", "self_consistency"):
            assert result.chains_used == len(result.chains) == n and result.compute.policy_tokens == kept
        samples = [c.sample for c in result.chains]
        assert len(samples) == len(set(samples))  # every kept chain is its own


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_chains_stopped_at_max_steps_are_kept_and_count_as_unanswered(name):
    problems = [p for p in _problems((4,), 6) if len(p.actions) >= 3]
    assert problems
    reasoner = Reasoner(SimulatedPolicy(0.3, seed=0), OracleSketcher(TASK), max_steps=3)
    results = run_strategy(name, problems, reasoner, ConsistencyVerifier(), **SMALL[name])
    assert len(results) == len(problems)
    for result in results:
        assert result.chains, f"{name} lost every chain of {result.problem_id}"
        assert all(not c.finished and c.meta["stopped"] == "max_steps" for c in result.chains)
        assert result.answer is None and result.chains_used >= len(result.chains)


# ---- every config field must take effect ---------------------------------------------------
NON_DEFAULT = {  # field -> {default: a different value}
    "n": {1: 2, 4: 8, 16: 8},
    "aggregate": {"min": "last", "last": "min"},
    "width": {4: 2},
    "rounds": {2: 0},
    "threshold": {0.5: 0.9},
    "window": {3: 2, 2: 3},
    "margin": {4: 2, 2: 3},
    "sketch_candidates": {1: 3, 4: 1},
    "budget": {4.0: 2.0},
    "probe": {2: 3},
    "denoise_cost": {1.0: 0.0},
    "refine": {True: False},
}
FIELDS = [(name, f.name) for name, (_, config_type) in sorted(STRATEGIES.items()) for f in fields(config_type)]
KNOWN_DEAD: dict = {}  # (strategy, field) -> reason; empty: every field takes effect


def _behaviour(results):
    """What a setting may change: answers, selections, chains used, compute, the chains themselves."""
    return [(r.answer, r.selected, r.chains_used, r.compute.untimed(),
             [(c.sample, tuple(c.thoughts)) for c in r.chains]) for r in results]


def _field_setup(name, field_name):
    """(reasoner, verifier, base settings) for a field's effect test. Sketch search only shows with
    a sketcher that errs and a verifier that reads sketches; compute_optimal's threshold only with
    graded scores (mean of the 0/1 consistency scores), and its cap ``n`` only when the budget allows it."""
    if name == "compute_optimal":
        base = {} if field_name == "aggregate" else {"aggregate": "mean"}
        return _reasoner(slip=0.3), ConsistencyVerifier(), base | ({"budget": 16.0} if field_name == "n" else {})
    if name in SEARCHES_SKETCHES or field_name == "sketch_candidates":
        return _reasoner(slip=0.3), ConsistencyVerifier(), {}
    return _reasoner(), ConfidenceVerifier(), {}


@functools.cache
def _default_behaviour(name, field_name):
    reasoner, verifier, base = _field_setup(name, field_name)
    return _behaviour(run_strategy(name, _problems(), reasoner, verifier, **base))


def test_every_config_field_has_a_non_default_value():
    for name, field_name in FIELDS:
        default = getattr(STRATEGIES[name][1](), field_name)
        assert field_name in NON_DEFAULT and default in NON_DEFAULT[field_name], (name, field_name, default)


@pytest.mark.parametrize("name, field_name", [
    pytest.param(*pair, marks=pytest.mark.xfail(strict=True, reason=KNOWN_DEAD[pair])) if pair in KNOWN_DEAD else pair
    for pair in FIELDS])
def test_every_config_field_takes_effect(name, field_name):
    default = getattr(STRATEGIES[name][1](), field_name)
    value = NON_DEFAULT[field_name][default]
    assert value != default
    reasoner, verifier, base = _field_setup(name, field_name)
    changed = _behaviour(run_strategy(name, _problems(), reasoner, verifier, **(base | {field_name: value})))
    assert changed != _default_behaviour(name, field_name), f"{name}: {field_name}={value!r} (default {default!r}) changed nothing"


# ---- clear errors before any work ----------------------------------------------------------
def test_make_config_rejects_unknown_settings():
    with pytest.raises(ValueError, match=r"strategy 'beam' has no setting\(s\) \['bogus'\]"):
        make_config("beam", bogus=1)
    with pytest.raises(ValueError, match="has no setting"):
        make_config("greedy", n=4)
    with pytest.raises(ValueError, match="has no setting"):
        make_config("self_consistency", aggregate="mean")
    with pytest.raises(ValueError, match="unknown strategy 'magic'"):
        make_config("magic")
    assert make_config("beam", n=8, width=2) == STRATEGIES["beam"][1](n=8, width=2)
    reasoner, steps = _counting_reasoner()
    with pytest.raises(ValueError, match="has no setting"):
        run_strategy("best_of_n", _problems((3,), 2), reasoner, ConsistencyVerifier(), width=2)
    with pytest.raises(ValueError, match="unknown strategy"):
        run_strategy("magic", _problems((3,), 2), reasoner, ConsistencyVerifier())
    assert steps == []


@pytest.mark.parametrize("name", ["beam", "dvts"])
@pytest.mark.parametrize("settings", [{"n": 6, "width": 4}, {"n": 1}, {"n": 5, "width": 2}, {"n": 4, "width": 0}])
def test_search_with_n_not_a_multiple_of_width_raises_before_work(name, settings):
    reasoner, steps = _counting_reasoner()
    with pytest.raises(ValueError, match="width"):
        run_strategy(name, _problems((3,), 2), reasoner, ConsistencyVerifier(), **settings)
    assert steps == []


@pytest.mark.parametrize("name, settings, message", [
    ("best_of_n", {"n": 0}, "n must be at least 1"),
    ("self_consistency", {"n": -1}, "n must be at least 1"),
    ("refine", {"rounds": -1}, "rounds must be non-negative"),
    ("adaptive", {"window": 0}, "must be positive"),
    ("adaptive", {"margin": 0}, "must be positive"),
    ("refine", {"threshold": "high"}, "threshold must be a number"),
    ("best_of_n", {"aggregate": "bogus"}, "unknown aggregation 'bogus'"),
    ("beam", {"n": 4, "width": 2, "aggregate": "max"}, "unknown aggregation 'max'"),
    ("dvts", {"n": 4, "width": "2"}, "width must be positive"),
])
def test_bad_setting_values_raise_before_work(name, settings, message):
    reasoner, steps = _counting_reasoner()
    with pytest.raises(ValueError, match=message):
        run_strategy(name, _problems((3,), 2), reasoner, ConsistencyVerifier(), **settings)
    assert steps == []


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_the_oracle_verifier_cannot_select(name):
    reasoner, steps = _counting_reasoner()
    with pytest.raises(ValueError, match="oracle"):
        run_strategy(name, _problems((3,), 2), reasoner, OracleVerifier(), **SMALL[name])
    assert steps == []


@pytest.mark.parametrize("function, config", [(beam, "beam"), (dvts, "dvts"), (refine, "refine")])
def test_step_level_strategies_reject_chain_level_verifiers(function, config):
    reasoner, steps = _counting_reasoner()
    for verifier in (VoteVerifier(), OracleVerifier()):
        with pytest.raises(ValueError, match="step-level verifier"):
            function(list(_problems((3,), 2)), reasoner, verifier, make_config(config, **SMALL[config]))
    with pytest.raises(ValueError, match="step-level verifier"):
        run_strategy(config, _problems((3,), 2), reasoner, VoteVerifier(), **SMALL[config])
    assert steps == []


# ---- statistical acceptance (small scale, fixed seed) ----------------------------------------
ACCEPTANCE = dict(sizes=(3, 4, 5), count=40)  # 120 maze-mcq problems, error_rate 0.3, seed 0


@functools.cache
def _accept(name, **settings):
    problems = _problems(**ACCEPTANCE)
    results = run_strategy(name, problems, _reasoner(0.3, seed=0), ConsistencyVerifier(), **settings)
    accuracy = rate(r.answer is not None and TASK.check(p, r.answer).correct for p, r in zip(problems, results))
    return accuracy, sum(r.chains_used for r in results) / len(results)


def test_greedy_accuracy_matches_the_error_rate():
    greedy, chains = _accept("greedy")
    assert greedy.total == 120 and chains == 1
    assert greedy.contains(0.7), str(greedy)


def test_verifier_selection_order():
    greedy = _accept("greedy")[0].value
    best = _accept("best_of_n", n=4)[0].value
    weighted = _accept("weighted_best_of_n", n=4)[0].value
    assert weighted >= best >= greedy
    assert best > greedy


@pytest.mark.parametrize("name, settings", [("beam", {"n": 4, "width": 2}), ("dvts", {"n": 4, "width": 2}),
                                            ("refine", {})])
def test_search_strategies_beat_greedy(name, settings):
    assert _accept(name, **settings)[0].value > _accept("greedy")[0].value


def test_voting_beats_greedy_and_adaptive_voting_saves_chains():
    # one test, so the n=16 runs are made once (each xdist worker has its own cache)
    greedy = _accept("greedy")[0]
    voting, voting_chains = _accept("self_consistency", n=16)
    adaptive, adaptive_chains = _accept("adaptive")  # n=16 at most
    assert voting.value > greedy.value
    assert adaptive.value > greedy.value
    assert voting_chains == 16
    assert adaptive_chains <= voting_chains / 2
    assert adaptive.value >= voting.value - 0.02
