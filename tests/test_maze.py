import numpy as np
import pytest

import tasks
from tasks import InvalidLayout, maze_from_ascii, maze_from_connection_list, maze_from_mvot_info, maze_to_ascii
from tasks.maze import MazeLayout, MazeState, maze_to_connection_list, random_maze

MCQ, NAV = tasks.get("maze-mcq-v0"), tasks.get("maze-nav-v0")


@pytest.mark.parametrize("size", range(2, 10))
def test_generated_mazes_are_perfect_and_gold_paths_valid(size):
    rng = np.random.default_rng(size)
    for _ in range(30):
        layout = random_maze(rng, size)
        assert layout.is_perfect()
    if size >= 3:
        for _ in range(30):
            problem = MCQ.generate(rng, size)
            state = MCQ.initial_state(problem)
            assert all(MCQ.is_valid(s, a) for s, a in zip([state] + MCQ.rollout(state, problem.actions), problem.actions))
            end = MCQ.rollout(state, problem.actions)[-1]
            assert end.mark_at(end.agent) == problem.answer
            assert len(problem.actions) == len(state.layout.shortest_path(state.agent, end.agent)) - 1


def test_ascii_round_trip_and_example():
    text = "\n".join(["#######", "#     #", "##### #", "#     #", "# #####", "#     #", "#######"])
    layout = maze_from_ascii(text)
    assert layout.size == 3 and layout.is_perfect()
    assert maze_to_ascii(layout) == text
    rng = np.random.default_rng(0)
    for _ in range(20):
        layout = random_maze(rng, int(rng.integers(2, 9)))
        assert maze_from_ascii(maze_to_ascii(layout)) == layout


def test_connection_list_and_mvot_record_round_trip():
    rng = np.random.default_rng(1)
    layout = random_maze(rng, 5)
    connections = maze_to_connection_list(layout)
    assert connections.shape == (2, 5, 5)
    assert maze_from_connection_list(connections) == layout
    info = "".join("T" if v else "F" for v in connections.reshape(-1))
    assert maze_from_mvot_info(info) == layout
    assert maze_from_mvot_info(list(connections.reshape(-1))) == layout


@pytest.mark.parametrize(
    "text, message",
    [
        ("#####\n#   #\n####", "square"),
        ("", "empty"),
        ("####\n#  #\n#  #\n####", "odd"),
        ("#####\n# @ #\n#####\n#####\n#####", "unknown characters"),
        ("#####\n##  #\n#####\n#   #\n#####", "is a wall"),
    ],
)
def test_malformed_ascii_names_the_problem(text, message):
    with pytest.raises(InvalidLayout, match=message):
        maze_from_ascii(text)


def test_external_layout_problems_and_their_errors():
    text = "#######\n#     #\n##### #\n#     #\n# #####\n#     #\n#######"
    layout = maze_from_ascii(text)  # a snake: (0,0)->(0,2)->(1,2)->(1,0)->(2,0)->(2,2)
    problem = MCQ.from_layout(layout, (0, 0), {"A": (2, 2), "B": (1, 1), "C": (0, 2), "D": (2, 0)}, target="A")
    assert problem.actions == ["right", "right", "down", "left", "left", "down", "right", "right"]
    assert MCQ.check(problem, "The answer is A.").correct
    explicit = MCQ.from_layout(layout, (0, 0), {"A": (2, 2), "B": (1, 1), "C": (0, 2), "D": (2, 0)}, actions=["right", "right"])
    assert explicit.answer == "C"
    with pytest.raises(InvalidLayout, match="walks into a wall"):
        MCQ.from_layout(layout, (0, 0), {"A": (2, 2), "B": (1, 1), "C": (0, 2), "D": (2, 0)}, actions=["down"])
    with pytest.raises(InvalidLayout, match="not a candidate"):
        MCQ.from_layout(layout, (0, 0), {"A": (2, 2), "B": (1, 1), "C": (0, 2), "D": (2, 0)}, actions=["right"])
    with pytest.raises(InvalidLayout, match="target must be one of the candidate letters A-D, got 'E'"):
        MCQ.from_layout(layout, (0, 0), {"A": (2, 2), "B": (1, 1), "C": (0, 2), "D": (2, 0)}, target="E")
    with pytest.raises(InvalidLayout, match="outside"):
        NAV.from_layout(layout, (0, 0), (3, 3))
    with pytest.raises(InvalidLayout, match="start"):
        NAV.from_layout(layout, (1, 1), (1, 1))
    broken = MazeLayout(3, ((True, True), (False, False), (True, True)), ((False, False, False), (True, True, True)))
    with pytest.raises(InvalidLayout, match="unreachable"):
        NAV.from_layout(broken, (0, 0), (2, 2))
    with pytest.raises(InvalidLayout, match="rows"):
        MazeLayout(3, ((True,),), ((True,),))


def test_wall_bumps_are_invalid_and_leave_the_agent_in_place():
    layout = maze_from_ascii("#####\n#   #\n### #\n#   #\n#####")
    state = MazeState(layout, (0, 0), frozenset({(0, 0)}))
    assert not MCQ.is_valid(state, "down") and MCQ.step(state, "down") == state
    assert MCQ.step(state, "right").agent == (0, 1)
    with pytest.raises(ValueError, match="unknown maze action"):
        MCQ.step(state, "jump")


def test_nav_metrics_exact_match_progress_and_validity():
    layout = maze_from_ascii("#######\n#     #\n##### #\n#     #\n# #####\n#     #\n#######")
    problem = NAV.from_layout(layout, (0, 0), (1, 0))
    gold = ["right", "right", "down", "left", "left"]
    assert NAV.score_plan(problem, gold).correct
    half = NAV.score_plan(problem, gold[:2] + ["left"])
    assert not half.correct and half.valid and half.progress == pytest.approx(2 / 5)
    bump = NAV.score_plan(problem, ["right", "down"])
    assert not bump.valid and bump.progress == pytest.approx(1 / 5)
    detour = NAV.score_plan(problem, ["right", "left"] + gold)
    assert detour.reached and not detour.correct and detour.progress == pytest.approx(1 / 5)


def test_interop_with_maze_dataset():
    maze_dataset = pytest.importorskip("maze_dataset")
    LatticeMaze = maze_dataset.LatticeMaze
    from maze_dataset.generation import LatticeMazeGenerators

    rng = np.random.default_rng(0)
    for _ in range(20):
        problem = NAV.generate(rng, int(rng.integers(3, 9)))
        state = NAV.initial_state(problem)
        theirs = LatticeMaze(connection_list=maze_to_connection_list(state.layout))
        path = state.layout.shortest_path(state.agent, dict(state.marks)["G"])
        assert theirs.is_valid_path(np.array(path))
        assert [tuple(c) for c in theirs.find_shortest_path(state.agent, dict(state.marks)["G"])] == path
    generated = LatticeMazeGenerators.gen_dfs(np.array([5, 5]))
    layout = maze_from_connection_list(generated)
    assert layout.is_perfect()
    assert maze_to_ascii(layout) == generated.as_ascii().strip()


def test_palette_keeps_the_agent_and_the_marks_in_separate_channels():
    """Blue alone says where the agent is; red and green alone say the mark, whatever the trail. So a
    move changes only the blue of two cells, never a candidate's colour."""
    from tasks.maze import KINDS, PALETTE

    for (mark, trail), (red, green, blue) in zip(KINDS, PALETTE):
        assert (blue < 0.25) == (trail == "agent")
        assert (blue > 0.75) == (trail == "none")
        same_mark = {PALETTE[i][:2] for i, (m, _) in enumerate(KINDS) if m == mark}
        assert same_mark == {(red, green)}
    assert len({PALETTE[i][:2] for i, (_, t) in enumerate(KINDS) if t == "none"}) == 6


def test_a_move_onto_a_candidate_changes_only_the_blue_channel():
    task = tasks.get("maze-mcq-v0")
    problem = task.generate(np.random.default_rng(5), 5)
    states = [task.initial_state(problem)] + [s.state for s in task.trace(problem, "visual") if s.action]
    for before, after in zip(states, states[1:]):
        a, b = (np.asarray(task.render(s), dtype=np.int16) for s in (before, after))  # (40, 40, 3)
        assert (a[..., :2] == b[..., :2]).all()
        assert (a[..., 2] != b[..., 2]).any()


@pytest.mark.parametrize("info, message", [("Z" * 18, "must be T/F flags, found 'Z'"), ("", "has 0 flags"),
                                           ([True, 2, False], "found 2"), ("TFT", "expected 2\\*n\\*n")])
def test_bad_mvot_maze_info_is_refused_clearly(info, message):
    with pytest.raises(InvalidLayout, match=message):
        maze_from_mvot_info(info)
