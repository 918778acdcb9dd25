"""The v1 MCQ tasks state sequences as wide as the published formats (revisits, bumps, detours,
returns, passes beside holes, actions after the end, up to 4n), with the answer still uniform and
no action-free heuristic above chance."""
from collections import Counter

import numpy as np
import pytest

import tasks
from tasks import grid

V1 = ["maze-mcq-v1", "frozenlake-mcq-v1", "minibehavior-mcq-v1"]


def _problems(name, size, count=400, seed=0):
    task, rng = tasks.get(name), np.random.default_rng(seed)
    return task, [task.generate(rng, size) for _ in range(count)]


def _visits(task, problem):
    """Each state along the stated sequence (the start included)."""
    state = task.initial_state(problem)
    return [state] + task.rollout(state, problem.actions)


@pytest.mark.parametrize("name", V1)
def test_answers_stay_uniform_and_sequences_reach_4n(name):
    task = tasks.get(name)
    size = task.out_of_distribution[-1]
    _, problems = _problems(name, size)
    counts = Counter(p.answer for p in problems)
    share = 1 / len(problems[0].options)
    assert set(counts) == set(problems[0].options)
    for letter, count in counts.items():
        assert abs(count / len(problems) - share) < 0.07, counts
    lengths = [len(p.actions) for p in problems]
    assert max(lengths) <= 4 * size and max(lengths) > 2 * size


def test_maze_v1_walks_backtrack_revisit_and_return():
    task, problems = _problems("maze-mcq-v1", 6)
    revisit = sum(len({s.agent for s in _visits(task, p)}) < len(p.actions) + 1 for p in problems)
    returns = [p for p in problems if p.meta["style"] == "return"]
    assert revisit > len(problems) // 4 and returns
    for p in returns:
        assert tuple(p.state["agent"]) == tuple(dict(p.state["marks"])[p.answer])  # the gold candidate is the start


def test_maze_v1_a_candidate_on_the_start_is_gold_only_by_chance():
    task, problems = _problems("maze-mcq-v1", 5, count=1500, seed=3)
    on_start = [p for p in problems if tuple(p.state["agent"]) in {tuple(c) for _, c in p.state["marks"]}]
    hits = sum(tuple(dict(p.state["marks"])[p.answer]) == tuple(p.state["agent"]) for p in on_start)
    assert len(on_start) > 300 and abs(hits / len(on_start) - 0.25) < 0.06


def test_maze_v1_nearest_candidate_heuristic_is_at_chance():
    task, problems = _problems("maze-mcq-v1", 6, count=1200, seed=4)

    def nearest(p):
        start = tuple(p.state["agent"])
        return min(p.state["marks"], key=lambda m: abs(m[1][0] - start[0]) + abs(m[1][1] - start[1]))[0]

    assert abs(np.mean([nearest(p) == p.answer for p in problems]) - 0.25) < 0.06


def test_frozenlake_v1_covers_bumps_returns_hole_edges_and_late_actions():
    task, problems = _problems("frozenlake-mcq-v1", 6)
    bumps = returns = edges = late = 0
    for p in problems:
        states = _visits(task, p)
        rows = states[0].desc
        moved = [a.agent != b.agent or a.status != b.status for a, b in zip(states, states[1:])]
        bumps += any(not m and s.status == "safe" for m, s in zip(moved, states))
        returns += any(s.agent == states[0].agent for s in states[1:-1])
        edges += any(any(0 <= grid.move(s.agent, d)[0] < len(rows) and 0 <= grid.move(s.agent, d)[1] < len(rows)
                         and rows[grid.move(s.agent, d)[0]][grid.move(s.agent, d)[1]] == "H" for d in grid.NEIGHBOURS)
                     and s.status == "safe" for s in states[:-1])
        late += states[-1].status != "safe" and any(s.status != "safe" for s in states[:-2])
    for name, count in (("bumps", bumps), ("returns", returns), ("hole edges", edges), ("late actions", late)):
        assert count > len(problems) // 20, (name, count)


def test_minibehavior_v1_has_bumps_and_repeated_pick_ups():
    task, problems = _problems("minibehavior-mcq-v1", 8)
    invalid = sum(any(not task.is_valid(s, a) for s, a in zip(_visits(task, p), p.actions)) for p in problems)
    repeated = sum(any(a == b == "pick up" for a, b in zip(p.actions, p.actions[1:])) for p in problems)
    assert invalid > len(problems) // 4 and repeated > len(problems) // 20


def test_v0_stays_reproducible_and_narrow():
    task, problems = _problems("maze-mcq-v0", 5, count=200)
    assert all(len(p.actions) == len(set(s.agent for s in _visits(task, p))) - 1 for p in problems)  # shortest paths
    again = [task.generate(np.random.default_rng(0), 5).id for _ in range(2)]
    assert again[0] == again[1] == problems[0].id


def test_maze_from_layout_accepts_a_candidate_on_the_start():
    layout = tasks.maze_from_ascii("#######\n#     #\n##### #\n#     #\n# #####\n#     #\n#######")
    for name in ("maze-mcq-v0", "maze-mcq-v1"):
        problem = tasks.get(name).from_layout(layout, (0, 0), {"A": (0, 0), "B": (1, 1), "C": (0, 2), "D": (2, 0)},
                                              actions=["right", "left"])
        assert problem.answer == "A"
        state = tasks.get(name).read(problem.image)
        assert state.agent == (0, 0) and dict(state.marks)["A"] == (0, 0)
