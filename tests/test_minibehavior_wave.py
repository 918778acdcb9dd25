"""minibehavior-nav-v1: a two-layer distance wave (carrying or not) in the visual chain, then local moves."""
import numpy as np
import pytest

import tasks
from tasks import grid
from tasks.minibehavior import _plan_distance
from tasks.minibehavior_wave import CARRY, EMPTY, WAVE_THOUGHT, WaveRoom, descend, spread, wave_done
from tasks.splits import generate_split

V1, V0 = tasks.get("minibehavior-nav-v1"), tasks.get("minibehavior-nav-v0")


def _distance(state, cell, layer):
    """The true number of actions to "installed" from ``cell``, with the printer in hand or where it lies."""
    return _plan_distance(state.size, state.table, cell, None if layer == CARRY else state.printer)


def test_v1_draws_v0s_problems_and_images_and_scores_them_alike():
    for size in (5, 8):
        ours, theirs = generate_split(V1, "test", size, 10), generate_split(V0, "test", size, 10)
        assert [p.content_key() for p in ours] == [p.content_key() for p in theirs]
        for p, q in zip(ours, theirs):
            assert p.task == V1.id and p.prompt == q.prompt and p.answer == q.answer
            assert np.array_equal(np.asarray(p.image), np.asarray(q.image))  # a room without marks looks the same
            assert V1.check(p, q.answer) == V0.check(q, q.answer)


def test_same_seed_same_problems_and_chains():
    first, again = generate_split(V1, "train", 7, 5, seed=4), generate_split(V1, "train", 7, 5, seed=4)
    assert [p.to_json() for p in first] == [p.to_json() for p in again]
    assert [[s.state for s in V1.trace(p)] for p in first] == [[s.state for s in V1.trace(p)] for p in again]


@pytest.mark.parametrize("size", [5, 7, 8, 10])
def test_both_layers_are_the_distance_to_installed_mod_3_and_every_action_follows_them(size):
    for problem in generate_split(V1, "test", size, 15, seed=1):
        trace, plan = V1.trace(problem), V1.gold_plan(problem)
        for step in trace:
            for cell, layer, colour in step.state.wave:
                assert _distance(step.state, cell, layer) % 3 == colour
        state = V1.initial_state(problem)
        for step in trace[:-1]:
            if step.thought != WAVE_THOUGHT:  # the action is read off the agent's cell and its neighbours
                assert wave_done(state) and descend(state) == step.action
            state = step.state
        assert state.installed and V1.check(problem, trace[-1].thought).correct
        assert V1.walked_plan([s.thought for s in trace[:-1]]) == plan


def test_the_rounds_of_each_phase_number_its_actions():
    for problem in generate_split(V1, "test", 8, 15, seed=2):
        trace, plan = V1.trace(problem), V1.gold_plan(problem)
        phases, rounds = [], 0
        for step in trace[:-1]:
            if step.thought == WAVE_THOUGHT:
                rounds += 1
            elif rounds:
                phases.append(rounds)
                rounds = 0
        split = plan.index("pick up") + 1
        assert phases == [len(plan), len(plan) - split]  # the first wave spans the whole plan, the second what follows pick up


def test_the_carrying_front_leads_and_the_empty_handed_layer_starts_at_the_printer():
    problem = generate_split(V1, "test", 7, 1, seed=3)[0]
    state = V1.initial_state(problem)
    once = spread(state)
    assert once.wave and all(layer == CARRY and colour == 1 for _, layer, colour in once.wave)  # next to the table
    assert all(any(grid.move(cell, d) in state.table for d in grid.NEIGHBOURS) for cell, _, _ in once.wave)
    while not wave_done(state):
        before, state = state, spread(state)
        old = before.marks() if isinstance(before, WaveRoom) else {}
        for cell, (layer, _) in state.marks().items():
            if layer == EMPTY and old.get(cell, (None,))[0] != EMPTY:  # a new empty-handed mark replaces
                assert old.get(cell, (None,))[0] == CARRY  # a carrying one of the round before
        assert state.printer not in {c for c, (layer, _) in state.marks().items() if layer == EMPTY}


@pytest.mark.parametrize("seed", range(3))
def test_every_chain_state_reads_back_through_noise(seed):
    rng = np.random.default_rng(seed)
    for problem in generate_split(V1, "test", 8, 5, seed=seed):
        for step in V1.trace(problem):
            assert V1.read(grid.perturb(V1.render(step.state), rng, sigma=0.1, blur=1.0)) == step.state


def test_reading_refuses_an_image_without_exactly_one_agent():
    problem = generate_split(V1, "test", 7, 1)[0]
    state = spread(V1.initial_state(problem))
    image = np.asarray(V1.render(state), dtype=np.float32) / 255.0
    r, c = state.agent
    gone = image.copy()
    gone[r * 8 + 2:r * 8 + 6, c * 8 + 2:c * 8 + 6] = gone[r * 8, c * 8]  # the agent's square painted over
    with pytest.raises(ValueError, match="one agent"):
        V1.read(grid.to_image(gone))
    with pytest.raises(ValueError, match="one agent"):
        V1.read(grid.to_image(np.ones_like(image)))


def test_picking_up_clears_the_wave_and_an_invalid_action_keeps_it():
    problem = generate_split(V1, "test", 7, 1, seed=5)[0]
    trace = V1.trace(problem)
    picked = next(s for s in trace if s.action == "pick up")
    assert picked.state.carrying and picked.state.wave == ()
    marked = next(s.state for s in trace if s.state.wave)
    bump = next((d for d in grid.NEIGHBOURS if not V1.is_valid(marked, d)), "drop")
    assert V1.step(marked, bump) == marked and V1.step(marked, "drop") == marked  # nothing to drop: nothing changes
    far = next(s.state for s in trace if s.state.wave and not V1.is_valid(s.state, "pick up"))
    assert V1.step(far, "pick up") == far  # a pick up away from the printer keeps the wave
    near = next(s.state for p in generate_split(V1, "test", 7, 40, seed=5) for s in V1.trace(p)
                if s.state.wave and not wave_done(s.state) and V1.is_valid(s.state, "pick up"))  # starts by the printer
    early = V1.step(near, "pick up")  # picked up before the wave reached the agent: the wave starts afresh
    assert early.carrying and early.wave == () and np.array_equal(np.asarray(V1.render(early)),
                                                                 np.asarray(V0.render(V0.step(near, "pick up"))))


def test_an_installed_printer_carries_no_marks_and_bad_wave_records_are_refused():
    problem = generate_split(V1, "test", 7, 1, seed=6)[0]
    done = V1.trace(problem)[-1].state
    assert done.installed and done.wave == () and V1.read(V1.render(done)) == done
    record = V1.state_to_json(spread(V1.initial_state(problem)))
    with pytest.raises(ValueError, match="wave entry"):
        V1.state_from_json(record | {"wave": [[[1, 1], 2, 0]]})
    with pytest.raises(ValueError, match="5-12 cells"):
        V1.read(grid.to_image(np.ones((13 * 8, 13 * 8, 3), dtype=np.float32)))
