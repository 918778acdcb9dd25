"""The independent problem source of benchmarks/independent_check.py: its own generators and
simulators agree with the tasks' answers (and, for the lake, with gymnasium), its mazes are what
Kruskal and Wilson promise, and it is deterministic per seed."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from independent_check import gymnasium_outcome, independent_problems, kruskal, lake_outcome, wilson  # noqa: E402
from tasks.metrics import length_bin  # noqa: E402


@pytest.mark.parametrize("family,sizes", [("maze", [3, 6, 8]), ("frozenlake", [3, 6, 8]), ("minibehavior", [7, 10])])
def test_labels_agree_with_the_tasks_and_repeat_per_seed(family, sizes):
    problems = independent_problems(family, sizes, 12, seed=7)  # raises on any disagreement
    assert len({p.id for p in problems}) == len(problems)
    assert all(0 < len(p.actions) <= 4 * p.meta["size"] for p in problems)
    assert [p.id for p in independent_problems(family, sizes, 12, seed=7)] == [p.id for p in problems]
    assert [p.id for p in independent_problems(family, sizes, 12, seed=8)] != [p.id for p in problems]


def test_navigation_mazes_have_far_goals_and_the_scripts_route_is_the_tasks_plan():
    import tasks

    problems = independent_problems("maze-nav", [3, 6, 8], 12, seed=7)  # raises unless the plans agree
    for p in problems:
        n = p.meta["size"]
        assert p.meta["path_length"] >= n - 1 and tasks.get("maze-nav-v1").check(p, "The answer is: " + p.answer).correct
    assert [p.id for p in independent_problems("maze-nav", [3, 6, 8], 12, seed=7)] == [p.id for p in problems]
    assert {p.task for p in independent_problems("maze-nav", [4], 2, task_id="maze-nav-v0")} == {"maze-nav-v0"}


@pytest.mark.parametrize("build", [kruskal, wilson])
def test_mazes_are_spanning_trees(build):
    for n in (2, 5, 8):
        walls = build(np.random.default_rng(n), n)
        assert len(walls.passages) == n * n - 1  # a tree on n^2 cells ...
        assert all(walls.route((0, 0), (r, c)) for r in range(n) for c in range(n) if (r, c) != (0, 0))  # connected


def test_lake_simulator_matches_gymnasium_on_edge_cases():
    rows = ["SFF", "FHF", "FFG"]
    cases = {("left", "up"): "C", ("right", "down"): "B", ("down", "down", "right", "right"): "A",
             ("right", "down", "up"): "B", ("down", "down", "right", "right", "up"): "A"}
    for actions, label in cases.items():
        assert lake_outcome(rows, list(actions)) == gymnasium_outcome(rows, list(actions)) == label


def test_length_bins():
    assert [length_bin(k) for k in (1, 4, 5, 8, 9, 16, 17, 40)] == ["1-4", "1-4", "5-8", "5-8", "9-16", "9-16", "17+", "17+"]
    with pytest.raises(ValueError):
        length_bin(0)


@pytest.mark.parametrize("family,sizes", [("minibehavior-nav", [5, 7, 8]), ("frozenlake-nav", [3, 5, 8])])
def test_planning_sources_check_the_tasks_plans_by_their_own_search_and_repeat_per_seed(family, sizes):
    problems = independent_problems(family, sizes, 12, seed=7)  # raises unless each gold plan is one of the script's shortest
    assert len({p.id for p in problems}) == len(problems) and {p.meta["source"] for p in problems} == {"independent_check"}
    assert [p.id for p in independent_problems(family, sizes, 12, seed=7)] == [p.id for p in problems]
    assert [p.id for p in independent_problems(family, sizes, 12, seed=8)] != [p.id for p in problems]


def test_the_room_search_carries_the_printer_through_its_own_cell():
    from independent_check import room_installed, room_plan_length

    # agent (2, 1), printer (2, 2), table (2, 4): pick up, then walk through the printer's cell to (2, 3)
    table = {(2, 4)}
    assert room_plan_length(7, table, (2, 1), (2, 2)) == 4
    assert room_installed(7, table, (2, 1), (2, 2), ["pick up", "right", "right", "drop"])
    assert not room_installed(7, table, (2, 1), (2, 2), ["right", "pick up", "drop"])  # the printer blocks the move
