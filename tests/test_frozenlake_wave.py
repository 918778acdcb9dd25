"""frozenlake-nav-v1: a distance wave from the goal in the visual chain, then moves that are local decisions."""
import numpy as np
import pytest

import tasks
from tasks import grid
from tasks.frozenlake import _goal_distances
from tasks.frozenlake_wave import WAVE_THOUGHT, descend, spread
from tasks.splits import generate_split
from vot.verifiers import ConsistencyVerifier

V1, V0 = tasks.get("frozenlake-nav-v1"), tasks.get("frozenlake-nav-v0")


def test_v1_draws_v0s_problems_and_images_and_scores_them_alike():
    for size in (3, 6):
        ours, theirs = generate_split(V1, "test", size, 10), generate_split(V0, "test", size, 10)
        assert [p.content_key() for p in ours] == [p.content_key() for p in theirs]
        for p, q in zip(ours, theirs):
            assert p.task == V1.id and p.prompt == q.prompt and p.answer == q.answer
            assert np.array_equal(np.asarray(p.image), np.asarray(q.image))  # an unmarked lake looks the same
            assert V1.check(p, q.answer) == V0.check(q, q.answer)


@pytest.mark.parametrize("size", [3, 5, 8])
def test_the_wave_is_the_distance_to_the_goal_mod_3_and_every_move_follows_it(size):
    for problem in generate_split(V1, "test", size, 15, seed=1):
        trace = V1.trace(problem)
        rounds = [s for s in trace if s.thought == WAVE_THOUGHT]
        plan = V1.gold_plan(problem)
        assert len(rounds) == len(plan)  # the wave stops when it reaches the agent: one round per move
        truth = _goal_distances(V1.initial_state(problem).desc)
        for k, step in enumerate(rounds, start=1):
            assert {cell: truth[cell] for cell, _ in step.state.wave} == {c: d for c, d in truth.items() if 0 < d <= k}
            assert all(truth[cell] % 3 == colour for cell, colour in step.state.wave)
        state = rounds[-1].state
        for step in trace[len(rounds):-1]:
            assert descend(state) == step.action  # the move is read off the agent's cell and its neighbours
            state = step.state
        assert state.status == "goal" and V1.check(problem, trace[-1].thought).correct
        assert V1.walked_plan([s.thought for s in trace[:-1]]) == plan


def test_a_round_marks_only_cells_next_to_marked_ones_and_never_holes_or_the_goal():
    problem = generate_split(V1, "test", 6, 1, seed=3)[0]
    state = V1.initial_state(problem)
    once = spread(state)
    goal = next((r, c) for r, row in enumerate(state.desc) for c, ch in enumerate(row) if ch == "G")
    for cell, colour in once.wave:
        assert colour == 1 and abs(cell[0] - goal[0]) + abs(cell[1] - goal[1]) == 1
        assert state.desc[cell[0]][cell[1]] in "SF"
    twice = spread(once)
    assert dict(once.wave).items() <= dict(twice.wave).items()  # marks are never redrawn


@pytest.mark.parametrize("seed", range(3))
def test_every_chain_state_reads_back_through_noise(seed):
    rng = np.random.default_rng(seed)
    for problem in generate_split(V1, "test", 8, 6, seed=seed):
        for step in V1.trace(problem):
            assert V1.read(grid.perturb(V1.render(step.state), rng, sigma=0.1, blur=1.0)) == step.state


def test_reading_refuses_an_image_without_exactly_one_agent():
    problem = generate_split(V1, "test", 4, 1)[0]
    image = np.asarray(V1.render(spread(V1.initial_state(problem))), dtype=np.float32) / 255.0
    with pytest.raises(ValueError, match="one agent.*found 0"):
        V1.read(grid.to_image(np.ones_like(image)))
    two = image.copy()
    free = next((r, c) for r in range(4) for c in range(4) if (r, c) != V1.initial_state(problem).agent)
    two[free[0] * 8:free[0] * 8 + 8, free[1] * 8:free[1] * 8 + 8] = (1, 0, 0)  # a second agent, as v0 draws one on the start
    with pytest.raises(ValueError, match="found 2"):
        V1.read(grid.to_image(two))


def test_a_sketch_that_lost_the_goal_spreads_nothing_and_the_verifier_says_why():
    """A misdrawn sketch (the goal painted over) must be rejected with a reason, not crash the check."""
    from vot.chain import Chain, Step
    from tasks.frozenlake_wave import WaveState

    problem = generate_split(V1, "test", 4, 1, 0)[0]
    state = V1.initial_state(problem)
    lost = WaveState(tuple(row.replace("G", "F") for row in state.desc), state.agent)
    assert spread(lost) == lost
    chain = Chain(problem.id, V1.id, 0, [Step(WAVE_THOUGHT, sketch=V1.render(lost)), Step(WAVE_THOUGHT, sketch=V1.render(lost))])
    reasons = ConsistencyVerifier().step_checks(problem, chain)
    assert reasons[0] is not None and len(reasons) == 2
