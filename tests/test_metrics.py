import numpy as np
import pytest

import tasks
from tasks.grid import perturb
from tasks.metrics import Rate, sketch_fidelity, summarize_scores, wilson_interval


def test_wilson_interval_known_values():
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    low, high = wilson_interval(500, 500)
    assert high == 1.0 and low == pytest.approx(0.99237, abs=1e-4)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)
    assert Rate(3, 4).contains(0.75) and str(Rate(1, 2)).startswith("50.0%")


def test_sketch_fidelity_counts_steps_redundancy_and_v_steps():
    task = tasks.get("maze-nav-v0")
    problem = task.generate(np.random.default_rng(0), 5)
    states = [step.state for step in task.trace(problem)][:-1]
    assert len(states) >= 3
    images = [task.render(s) for s in states]
    perfect = sketch_fidelity(task, images, states)
    assert perfect.all_correct and perfect.v_steps == len(states) and perfect.redundancy == 0
    # Step 2 shows the agent one step ahead (a mark where nothing should be yet); step 3 is garbage.
    images[1] = task.render(states[2])
    images[2] = images[2].resize((images[2].width, images[2].height + 8))
    result = sketch_fidelity(task, images, states)
    assert result.correct[:3] == (True, False, False)
    assert result.v_steps == 1 and result.redundant[:3] == (False, True, False)
    assert result.step_accuracy == pytest.approx((len(states) - 2) / len(states))
    with pytest.raises(ValueError, match="sketches for"):
        sketch_fidelity(task, images[:1], states)


def test_noisy_sketches_still_count_as_correct():
    task = tasks.get("frozenlake-nav-v0")
    problem = task.generate(np.random.default_rng(1), 6)
    states = [step.state for step in task.trace(problem)]
    rng = np.random.default_rng(2)
    assert sketch_fidelity(task, [perturb(task.render(s), rng) for s in states], states).all_correct


def test_summarize_scores_for_planning():
    task = tasks.get("maze-nav-v0")
    problems = [task.generate(np.random.default_rng(i), 4) for i in range(10)]
    scores = [task.check(p, p.answer if i % 2 else "The answer is: Go up. Go up. Go up. Go up. Go up.") for i, p in enumerate(problems)]
    summary = summarize_scores(scores)
    assert summary["accuracy"].successes == 5
    assert summary["invalid_among_failures"].total == 5
    assert 0.5 <= summary["progress_rate"] <= 1.0
