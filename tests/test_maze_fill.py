"""maze-nav-v1: dead-end filling in the visual chain, then moves that are local decisions."""
import numpy as np
import pytest

import tasks
from imagegen import OracleSketcher
from imagegen.data import build_transitions, thought_corpus
from tasks import grid
from tasks.maze_fill import FILL_THOUGHT, FILLED, FRESH, fill_dead_ends, filled_cells
from tasks.splits import generate_split

V1, V0 = tasks.get("maze-nav-v1"), tasks.get("maze-nav-v0")


def _filled(state):
    return filled_cells(state)


def _fresh(state):
    return {cell for label, cell in state.marks if label == FRESH}


def test_v1_draws_v0s_problems_and_scores_them_alike():
    for size in (3, 6):
        ours, theirs = generate_split(V1, "test", size, 10), generate_split(V0, "test", size, 10)
        assert [p.content_key() for p in ours] == [p.content_key() for p in theirs]
        assert all(p.task == "maze-nav-v1" and p.prompt == q.prompt for p, q in zip(ours, theirs))
        for p, q in zip(ours, theirs):
            assert V1.check(p, V0.trace(q)[-1].thought) == V0.check(q, V0.trace(q)[-1].thought)


@pytest.mark.parametrize("size", [3, 5, 8])
def test_filling_leaves_exactly_the_path_and_every_move_is_local(size):
    for problem in generate_split(V1, "test", size, 15, seed=1):
        trace = V1.trace(problem)
        fills = [s for s in trace if s.action == "fill"]
        assert fills and all(s.thought == FILL_THOUGHT for s in fills)
        before = fills[-2].state if len(fills) > 1 else V1.initial_state(problem)
        assert _filled(fills[-1].state) == _filled(before)  # the last round fills nothing ...
        assert all(_fresh(s.state) for s in fills[:-1]) and not _fresh(fills[-1].state)  # ... and shows no fresh fill
        state = fills[-1].state
        start, goal = state.agent, V1.goal(problem)
        path = set(state.layout.shortest_path(start, goal))
        everything = {(r, c) for r in range(size) for c in range(size)}
        assert everything - _filled(state) == path
        for step in trace[len(fills):-1]:  # each move: the one open side to an unfilled cell not walked on
            exits = [d for d in V1.actions if state.layout.is_open(state.agent, d)
                     and grid.move(state.agent, d) not in _filled(state) | state.visited]
            assert exits == [step.action]
            state = step.state
        assert state.agent == goal and V1.check(problem, trace[-1].thought).correct


def test_a_fill_round_fills_every_dead_end_at_once_and_never_the_agent_or_goal():
    problem = generate_split(V1, "test", 6, 1, seed=2)[0]
    state = V1.initial_state(problem)
    once = fill_dead_ends(state)
    layout = state.layout
    ends = {(r, c) for r in range(6) for c in range(6)
            if sum(layout.is_open((r, c), d) for d in V1.actions) == 1} - {state.agent, V1.goal(problem)}
    assert _filled(once) == _fresh(once) == ends
    twice = fill_dead_ends(once)
    assert {c for label, c in twice.marks if label == FILLED} == ends and _fresh(twice) == _filled(twice) - ends
    assert V1.step(state, "fill") == once and V1.imagine(state, FILL_THOUGHT) == once
    assert not V1.is_valid(state, "fill")  # a plan cannot name "fill": only moves are actions
    moved = V1.imagine(state, "Go up. Go left.")
    assert moved == V1.step(V1.step(state, "up"), "left")


def test_the_oracle_sketcher_draws_fills_and_moves():
    problem = generate_split(V1, "test", 5, 1, seed=3)[0]
    trace = [s for s in V1.trace(problem) if s.action is not None]
    image, sketcher = problem.image, OracleSketcher(V1)
    for step in trace:
        image = sketcher.sketch([image], [step.thought])[0]
        assert V1.read(image) == step.state


def test_the_fill_sketcher_trains_on_fill_and_move_transitions():
    corpus = thought_corpus("maze-fill")
    assert FILL_THOUGHT in corpus and "Go up." in corpus
    data = build_transitions("maze-fill", [3], 4, seed=0)[3]
    assert FILL_THOUGHT in data.thoughts and any(t.startswith("Go ") for t in data.thoughts)
    changed = [not np.array_equal(a, b) for a, b, t in zip(data.prev, data.next, data.thoughts) if t == FILL_THOUGHT]
    assert all(changed)  # even the last round changes the sketch: its fresh fills turn old


def test_sketcher_fidelity_rolls_over_the_whole_gold_chain():
    from imagegen.evaluate import rollout_fidelity

    row = rollout_fidelity(OracleSketcher(V1), "maze-fill", 4, 5, steps=1)
    plans = [len(V1.gold_plan(p)) for p in generate_split(V1, "test", 4, 5)]
    assert row.rollout_accuracy["value"] == 1.0 and row.mean_length > np.mean(plans)  # fills counted too


def test_a_chain_that_fills_then_walks_solves_the_problem():
    from vot.policy import SimulatedPolicy
    from vot.reasoner import Reasoner, greedy_correct

    problems = [p for size in (3, 6) for p in generate_split(V1, "test", size, 4)]
    reasoner = Reasoner(SimulatedPolicy(error_rate=0.0), OracleSketcher(V1), max_steps=96)
    assert all(greedy_correct(reasoner, problems))
    chain = reasoner.run(problems[-1:], greedy=True)[0][0]
    assert chain.steps[0].thought == FILL_THOUGHT and V1.read(chain.steps[-2].sketch).agent == V1.goal(problems[-1])


def test_the_decision_probe_counts_every_gold_decision_once():
    import sys
    from pathlib import Path

    import torch

    from vot.lm.model import PolicyModel, PolicyShape, PolicySpec
    from vot.lm.sequences import corpus
    from vot.lm.tokenizer import WordTokenizer

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from nav_decisions import decisions

    problems = generate_split(V1, "val", 3, 2) + generate_split(V1, "val", 4, 2)
    tokenizer = WordTokenizer.train(corpus(problems))
    torch.manual_seed(0)
    shape = PolicyShape(hidden=32, layers=2, heads=2, kv_heads=1, vision_hidden=16, vision_layers=1, vision_heads=2, patch=8)
    model = PolicyModel(PolicySpec(V1.id, "vot", shape), tokenizer).eval()
    stats = decisions(model, V1, [3, 4], 2)
    traces = [V1.trace(p) for p in problems]
    moves = sum(1 for t in traces for s in t if s.action in V1.actions)
    thoughts = sum(1 for t in traces for s in t if s.action is not None)
    assert sum(total for key, (_, total) in stats.items() if key.startswith("direction")) == moves
    assert sum(total for key, (_, total) in stats.items() if key.startswith("Fill or Go")) == thoughts
    assert all(0 <= right <= total for right, total in stats.values())


def test_the_shipped_fill_sketcher_is_maze_nav_v1s_default_and_draws_whole_chains():
    """``load_sketcher("maze-nav-v1")`` is the shipped maze-fill sketcher; its whole fill-then-walk
    rollouts are exact on these test problems (its card: 100% at sizes 3-8, 50 per size)."""
    from imagegen import PRETRAINED, load_sketcher
    from imagegen.evaluate import rollout_fidelity

    sketcher = load_sketcher("maze-nav-v1")
    assert str(sketcher.name_or_path) == str(PRETRAINED / "maze-fill")
    row = rollout_fidelity(sketcher, "maze-fill", size=4, count=4, steps=4)
    assert row.rollout_accuracy["value"] == 1.0 and row.mean_length > 8
