import gymnasium as gym
import numpy as np
import pytest

import tasks
from tasks import InvalidLayout
from tasks.frozenlake import GYM_ACTIONS, LakeState

MCQ, NAV = tasks.get("frozenlake-mcq-v0"), tasks.get("frozenlake-nav-v0")


@pytest.mark.parametrize("size", [2, 3, 4, 5, 6, 8])
def test_dynamics_match_gymnasium_frozenlake(size):
    rng = np.random.default_rng(size)
    for _ in range(25):
        desc = MCQ.random_desc(rng, size)
        env = gym.make("FrozenLake-v1", desc=list(desc), is_slippery=False)
        observation, _ = env.reset(seed=0)
        state = MCQ.start_state(desc)
        assert observation == state.agent[0] * size + state.agent[1]
        for action in rng.choice(MCQ.actions, size=3 * size):
            state = MCQ.step(state, str(action))
            observation, reward, terminated, _, _ = env.step(GYM_ACTIONS[str(action)])
            assert observation == state.agent[0] * size + state.agent[1]
            assert reward == (1.0 if state.status == "goal" else 0.0)
            assert terminated == (state.status != "safe")
            if terminated:
                break
        env.close()


def test_start_and_goal_are_placed_anywhere():
    rng = np.random.default_rng(0)
    starts, goals = set(), set()
    for _ in range(200):
        desc = MCQ.random_desc(rng, 4)
        starts.add(next((r, row.index("S")) for r, row in enumerate(desc) if "S" in row))
        goals.add(next((r, row.index("G")) for r, row in enumerate(desc) if "G" in row))
    assert len(starts) > 10 and len(goals) > 10


def test_mvot_style_map_and_outcomes():
    desc = ["FHF", "HFG", "FSF"]  # from MVoT's released maps: S and G off the corners
    assert MCQ.from_layout(desc, ["up", "right"]).answer == "A"
    assert MCQ.from_layout(desc, ["right", "up", "down"]).answer == "A"  # actions after the goal change nothing
    assert MCQ.from_layout(desc, ["left", "up"]).answer == "B"
    assert MCQ.from_layout(desc, ["right"]).answer == "C"
    assert MCQ.from_layout(desc, ["down"]).answer == "C"  # off the edge: stays in place
    problem = NAV.from_layout(desc)
    assert NAV.check(problem, problem.answer).correct
    assert len(NAV.parse_answer(problem.answer)) == 2


@pytest.mark.parametrize(
    "desc, message",
    [
        (["SF", "FGF"], "square"),
        (["SFF", "FXF", "FFG"], "unknown tiles"),
        (["FFF", "FHF", "FFG"], "exactly one start"),
        (["SFG", "FHF", "FFG"], "exactly one goal"),
        (["SHF", "HFF", "FFG"], "unreachable"),
        ([], "empty"),
    ],
)
def test_malformed_maps_name_the_problem(desc, message):
    with pytest.raises(InvalidLayout, match=message):
        MCQ.from_layout(desc, ["up"])
    with pytest.raises(InvalidLayout, match=message):
        NAV.from_layout(desc)


def test_mcq_classes_are_balanced():
    rng = np.random.default_rng(0)
    answers = [MCQ.generate(rng, int(rng.integers(3, 7))).answer for _ in range(600)]
    counts = {k: answers.count(k) for k in "ABC"}
    assert all(150 < c < 250 for c in counts.values()), counts


def test_nav_walking_into_a_hole_or_off_the_edge_is_scored():
    desc = ["SFF", "FHF", "FFG"]
    problem = NAV.from_layout(desc)
    fell = NAV.score_plan(problem, ["right", "down"])
    assert fell.valid and not fell.reached and not fell.correct and fell.progress == pytest.approx(1 / 4)
    edge = NAV.score_plan(problem, ["up"])
    assert not edge.valid and edge.progress == 0
    after_goal = NAV.score_plan(problem, ["right", "right", "down", "down", "up"])
    assert not after_goal.valid


def test_read_reports_unreadable_images():
    state = LakeState(("SFF", "FHF", "FFG"), (0, 0))
    image = MCQ.render(state)
    blank = image.copy()
    blank.paste((128, 255, 255), (0, 0, 8, 8))  # paint the agent out
    with pytest.raises(ValueError, match="exactly one agent"):
        MCQ.read(blank)
