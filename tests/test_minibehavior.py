"""MiniBehavior InstallingAPrinter: world rules, perception round trip, gold traces, MCQ balance,
navigation scoring, external layouts and the gymnasium environment."""
import subprocess
import sys
from collections import deque

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import tasks
from tasks.core import InvalidLayout
from tasks.grid import perturb
from tasks.minibehavior import ACTIONS, RoomState, layout_of, plan_distance, random_room, room_from_layout, shortest_plan
from tasks.parsing import parse_actions

MCQ, NAV = tasks.get("minibehavior-mcq-v0"), tasks.get("minibehavior-nav-v0")
ENV_ID = "vot/MiniBehavior-InstallingAPrinter-v0"
# 7x7 room: interior rows/columns 1..5, a 1x2 table at (3, 3)-(3, 4).
LAYOUT = {"size": 7, "table": [[3, 3], [3, 4]], "printer": [5, 2], "agent": [1, 1]}


def some_states(rng: np.random.Generator, size: int) -> list[RoomState]:
    """A room's start, every state along a random shortest plan (carrying, installed) and a random walk."""
    state = random_room(rng, size)
    states = [state] + MCQ.rollout(state, shortest_plan(state, rng))
    walk = [ACTIONS[i] for i in rng.integers(len(ACTIONS), size=30)]
    return states + MCQ.rollout(states[-1], walk) + MCQ.rollout(state, walk)


# --- world rules -----------------------------------------------------------------------------
def test_rules_moves_pick_up_and_drop():
    s = room_from_layout(LAYOUT)
    assert not MCQ.is_valid(s, "up") and MCQ.step(s, "up") == s  # wall
    assert not MCQ.is_valid(s, "pick up") and not MCQ.is_valid(s, "drop")
    assert not MCQ.is_valid(s, "jump") and MCQ.is_valid(s, "down")
    s = MCQ.rollout(s, ["down", "down", "down"])[-1]  # (4, 1), printer at (5, 2) is diagonal
    assert s.agent == (4, 1) and not MCQ.is_valid(s, "pick up")
    s = MCQ.step(s, "right")  # (4, 2): printer below
    assert not MCQ.is_valid(s, "down")  # the printer blocks
    s = MCQ.step(s, "pick up")
    assert s.carrying and s.printer is None and MCQ.is_valid(s, "down")
    assert not MCQ.is_valid(s, "drop")  # no table next to (4, 2)
    s = MCQ.step(s, "right")  # (4, 3): table above
    assert not MCQ.is_valid(s, "up")  # the table blocks
    s = MCQ.step(s, "drop")
    assert s.installed and s.printer == (3, 3) and not s.carrying
    assert MCQ.answer_for(s) == "A" and NAV.is_goal(None, s)
    assert MCQ.step(s, "down").agent == (5, 3) and MCQ.step(s, "down").installed  # moves go on after installing
    again = MCQ.step(s, "pick up")  # the installed printer can be picked up again
    assert again.carrying and MCQ.answer_for(again) == "B"


def test_drop_prefers_up_down_left_right():
    s = RoomState(7, ((2, 3), (3, 4)), (3, 3), None)  # table cells above and to the right
    assert MCQ.step(s, "drop").printer == (2, 3)
    s = RoomState(7, ((3, 2), (3, 4)), (3, 3), None)  # left and right
    assert MCQ.step(s, "drop").printer == (3, 2)


def brute_force_distance(state: RoomState) -> int | None:
    """Forward BFS over whole states with the task's own ``step``."""
    seen, queue = {state: 0}, deque([state])
    while queue:
        s = queue.popleft()
        if s.installed:
            return seen[s]
        for action in ACTIONS:
            t = MCQ.step(s, action)
            if t not in seen:
                seen[t] = seen[s] + 1
                queue.append(t)
    return None


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(5, 7))
def test_plan_distance_matches_brute_force_search(seed, size):
    rng = np.random.default_rng(seed)
    for state in some_states(rng, size)[::7]:
        assert plan_distance(state) == brute_force_distance(state)
        plan = shortest_plan(state, rng)
        assert len(plan) == plan_distance(state)
        assert ([state] + MCQ.rollout(state, plan))[-1].installed


# --- perception ------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(5, 8))
def test_read_inverts_render_also_under_perturb(seed, size):
    rng = np.random.default_rng(seed)
    for state in some_states(rng, size):
        image = MCQ.render(state)
        assert image.size == (8 * size, 8 * size) and image.mode == "RGB"
        assert MCQ.read(image) == state
        assert MCQ.read(perturb(image, rng)) == state


def test_every_kind_is_drawn_and_read():
    s = room_from_layout(LAYOUT)
    carried = RoomState(7, s.table, (4, 2), None)
    installed = RoomState(7, s.table, (4, 3), (3, 3))
    for state in (s, carried, installed):
        assert MCQ.read(MCQ.render(state)) == state
    assert np.asarray(MCQ.render(carried))[4 * 8 + 4, 2 * 8 + 4].tolist() == [255, 0, 255]  # magenta
    assert np.asarray(MCQ.render(installed))[3 * 8 + 4, 3 * 8 + 4].tolist() == [0, 255, 0]  # green


def test_read_rejects_unreadable_images():
    s = room_from_layout(LAYOUT)
    pixels = np.asarray(MCQ.render(s)).copy()
    no_agent = pixels.copy()
    no_agent[8:16, 8:16] = 255
    with pytest.raises(ValueError, match="one agent"):
        MCQ.read(Image.fromarray(no_agent))
    two_agents = pixels.copy()
    two_agents[16:24, 8:16] = (255, 0, 0)
    with pytest.raises(ValueError, match="one agent"):
        MCQ.read(Image.fromarray(two_agents))
    no_printer = pixels.copy()
    no_printer[40:48, 16:24] = 255
    with pytest.raises(ValueError, match="printer"):
        MCQ.read(Image.fromarray(no_printer))
    for size_px in ((32, 32), (104, 104), (56, 64), (60, 60)):
        with pytest.raises(ValueError):
            MCQ.read(Image.new("RGB", size_px, "white"))
    with pytest.raises(ValueError, match="wall"):
        MCQ.read(Image.new("RGB", (56, 56), "white"))


def test_describe_and_marked_cells():
    s = room_from_layout(LAYOUT)
    assert MCQ.describe(s) == "Now at row 1, column 1. Carrying: None."
    carried = RoomState(7, s.table, (4, 2), None)
    assert MCQ.describe(carried) == "Now at row 4, column 2. Carrying: printer."
    assert MCQ.marked_cells(s) == {(1, 1), (5, 2)} and MCQ.marked_cells(carried) == {(4, 2)}


# --- gold traces, balance, scoring -----------------------------------------------------------
@pytest.mark.parametrize("task", [MCQ, NAV], ids=lambda t: t.id)
def test_gold_traces_end_correct(task):
    rng = np.random.default_rng(0)
    for i in range(200):
        problem = task.generate(rng, 5 + i % 6)
        for style in ("visual", "text"):
            trace = task.trace(problem, style)
            assert task.check(problem, trace[-1].thought).correct, (problem.state, style)
            actions = [step.action for step in trace if step.action is not None]
            start = task.initial_state(problem)
            assert [step.state for step in trace[:-1]] == task.rollout(start, actions)
            if style == "text":
                assert all("Carrying: " in step.thought for step in trace[:-1])
        if task is NAV:
            assert trace[-1].state.installed and len(actions) == NAV.goal_distance(problem, start)


def test_mcq_classes_balanced_and_action_text_heuristics_not_perfect():
    rng = np.random.default_rng(1)
    problems = [MCQ.generate(rng, size) for size in (7, 8) for _ in range(300)]
    gold = np.array([p.answer == "A" for p in problems])
    assert 0.44 <= gold.mean() <= 0.56

    def picks_then_drops(actions):
        last_pick = max((i for i, a in enumerate(actions) if a == "pick up"), default=-1)
        last_drop = max((i for i, a in enumerate(actions) if a == "drop"), default=-1)
        return 0 <= last_pick < last_drop

    heuristics = {
        "contains drop": lambda a: "drop" in a,
        "ends with drop": lambda a: a[-1] == "drop",
        "pick up then drop": picks_then_drops,
        "one pick up and one drop": lambda a: a.count("pick up") == 1 and a.count("drop") == 1,
    }
    for name, guess in heuristics.items():
        accuracy = np.mean([guess(p.actions) == g for p, g in zip(problems, gold)])
        assert accuracy < 0.8, (name, accuracy)
    lengths = np.array([len(p.actions) for p in problems])
    best_threshold = max(max(np.mean((lengths > k) == gold), np.mean((lengths <= k) == gold)) for k in range(40))
    assert best_threshold < 0.65, best_threshold
    for p in problems:  # moves never bump; only pick up / drop may be invalid
        states = [MCQ.initial_state(p)] + MCQ.rollout(MCQ.initial_state(p), p.actions)
        assert all(MCQ.is_valid(s, a) for s, a in zip(states, p.actions) if a not in ("pick up", "drop"))
    failures = [p for p in problems if p.answer == "B"]
    assert np.mean([picks_then_drops(p.actions) for p in failures]) > 0.35  # failures also pick up and drop
    assert {p.meta["variant"] for p in problems} == {*MCQ.success_weights, *MCQ.failure_weights}


def test_mcq_answers_parse_by_letter_or_word():
    problem = MCQ.from_layout(LAYOUT, ["down"] * 3 + ["right", "pick up", "right", "drop"])
    assert problem.answer == "A" and problem.options == {"A": "Success", "B": "Failure"}
    assert MCQ.check(problem, "The answer is A.").correct
    assert MCQ.check(problem, "... so the answer is Success").correct
    assert not MCQ.check(problem, "The answer is B.").correct


def test_nav_scoring():
    rng = np.random.default_rng(2)
    for _ in range(20):
        problem = NAV.generate(rng, 7)
        plan = parse_actions(problem.answer, ACTIONS)
        score = NAV.score_plan(problem, plan)
        assert score.correct and score.progress == 1.0 and score.valid and score.reached
        empty = NAV.check(problem, "The answer is: (no moves).")
        assert not empty.correct and empty.progress == 0.0 and not empty.reached and not empty.parse_failed
        assert NAV.score_plan(problem, []).progress == 0.0
        half = NAV.score_plan(problem, plan[: len(plan) // 2])
        assert not half.correct and half.progress == (len(plan) // 2) / len(plan)
    problem = NAV.from_layout(LAYOUT)
    assert problem.answer == "Go down. Go down. Go down. Go right. Pick up. Go up. Drop."
    detour = ["right", "left", *parse_actions(problem.answer, ACTIONS)]
    score = NAV.score_plan(problem, detour)
    assert score.reached and score.valid and not score.correct
    bump = NAV.score_plan(problem, ["up", *detour])
    assert not bump.valid and not bump.reached and bump.progress == 0.0


# --- external layouts ------------------------------------------------------------------------
def test_from_layout_round_trips_and_keys():
    problem = MCQ.from_layout({**LAYOUT, "actions": "Go down. Go down. Go down. Go right. Pick up. Drop."})
    assert problem.answer == "B" and problem.actions[-2:] == ["pick up", "drop"]
    start = MCQ.initial_state(problem)
    assert layout_of(start) == LAYOUT and "layout" in problem.state
    assert MCQ.layout_key(problem) == NAV.layout_key(NAV.from_layout(LAYOUT))
    moved = NAV.from_layout({**LAYOUT, "agent": [1, 2]})
    assert NAV.layout_key(moved) != NAV.layout_key(NAV.from_layout(LAYOUT))
    rng = np.random.default_rng(3)
    for _ in range(20):
        generated = NAV.generate(rng, 8)
        again = NAV.from_layout(layout_of(NAV.initial_state(generated)))
        assert again.state == generated.state and again.answer == generated.answer


BAD_LAYOUTS = {
    "size 4": ({**LAYOUT, "size": 4}, "size"),
    "size 13": ({**LAYOUT, "size": 13}, "size"),
    "size text": ({**LAYOUT, "size": "7"}, "size"),
    "missing agent": ({k: v for k, v in LAYOUT.items() if k != "agent"}, "missing"),
    "table L shape": ({**LAYOUT, "table": [[3, 3], [3, 4], [4, 3]]}, "rectangle"),
    "table gap": ({**LAYOUT, "table": [[3, 2], [3, 4]]}, "rectangle"),
    "table twice": ({**LAYOUT, "table": [[3, 3], [3, 3]]}, "twice"),
    "table empty": ({**LAYOUT, "table": []}, "table"),
    "table on wall": ({**LAYOUT, "table": [[0, 3], [0, 4]]}, "wall"),
    "printer on wall": ({**LAYOUT, "printer": [6, 2]}, "wall"),
    "agent outside": ({**LAYOUT, "agent": [1, 9]}, "wall or outside"),
    "agent not a pair": ({**LAYOUT, "agent": [1]}, "pair"),
    "printer on table": ({**LAYOUT, "printer": [3, 4]}, "overlaps the table"),
    "agent on table": ({**LAYOUT, "agent": [3, 3]}, "overlaps the table"),
    "agent on printer": ({**LAYOUT, "agent": [5, 2]}, "overlap"),
    # 5x5 room split by a 3x1 table: the agent is on the left, the printer on the right.
    "unreachable": ({"size": 5, "table": [[1, 2], [2, 2], [3, 2]], "printer": [2, 3], "agent": [1, 1]}, "no plan"),
}


@pytest.mark.parametrize("name", sorted(BAD_LAYOUTS))
def test_malformed_layouts_raise_invalid_layout(name):
    layout, message = BAD_LAYOUTS[name]
    with pytest.raises(InvalidLayout, match=message):
        NAV.from_layout(layout)
    with pytest.raises(InvalidLayout, match=message):
        MCQ.from_layout(layout, ["up"])


def test_mcq_layout_needs_known_actions():
    with pytest.raises(InvalidLayout, match="action sequence"):
        MCQ.from_layout(LAYOUT)
    with pytest.raises(InvalidLayout, match="unknown"):
        MCQ.from_layout(LAYOUT, ["up", "fly"])


# --- gymnasium environment -------------------------------------------------------------------
def test_import_tasks_does_not_import_minigrid():
    code = "import sys, tasks, gymnasium; assert 'minigrid' not in sys.modules; print(gymnasium.spec('%s').entry_point)"
    result = subprocess.run([sys.executable, "-c", code % ENV_ID], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "tasks.minibehavior_env:InstallingAPrinterEnv"


def test_gym_env_gold_plan_installs_and_seeds_repeat():
    import gymnasium

    env = gymnasium.make(ENV_ID, size=8)
    assert env.action_space.n == 6
    obs, info = env.reset(seed=5)
    again, _ = env.reset(seed=5)
    assert all(np.array_equal(obs[k], again[k]) for k in ("image", "direction")) and obs["mission"] == again["mission"]
    assert obs["image"].shape == (8, 8, 3) and env.observation_space.contains(obs)
    other, _ = env.reset(seed=6)
    assert not np.array_equal(obs["image"], other["image"])
    env.reset(seed=5)
    state = NAV.state_from_json(info["state"])
    plan = shortest_plan(state)
    for i, action in enumerate(plan):
        obs, reward, terminated, truncated, step_info = env.step(ACTIONS.index(action))
        assert step_info["valid"] and terminated == (i == len(plan) - 1) and not truncated
    assert reward == 1.0 and terminated and NAV.state_from_json(step_info["state"]).installed
    env.close()


def test_gym_env_layout_option_invalid_actions_and_render():
    import gymnasium

    env = gymnasium.make(ENV_ID, render_mode="rgb_array")
    obs, info = env.reset(seed=0, options={"layout": LAYOUT})
    assert info["state"] == {"layout": {"size": 7, "table": [[3, 3], [3, 4]]}, "agent": [1, 1], "printer": [5, 2]}
    assert obs["image"][1, 1, 0] == 10 and obs["image"][3, 3, 0] == 7 and obs["image"][2, 5, 0] == 6  # x, y
    obs, reward, terminated, _, step_info = env.step(ACTIONS.index("up"))
    assert not step_info["valid"] and reward == 0.0 and not terminated
    assert env.render().shape == (7 * 32, 7 * 32, 3)
    env.close()
