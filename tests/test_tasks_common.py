"""Contracts every registered task must meet (round trip, determinism, gold 100%, baselines at chance)."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tasks
from tasks import baselines
from tasks.grid import min_palette_distance, perturb
from tasks.metrics import rate
from tasks.splits import generate_split

ALL = tasks.names()
EXPECTED = {"maze-mcq-v0", "maze-nav-v0", "frozenlake-mcq-v0", "frozenlake-nav-v0", "minibehavior-mcq-v0", "minibehavior-nav-v0"}


def sizes_of(task, low=3, high=8):
    return list(range(max(low, task.min_size), min(high, task.max_size) + 1))


def test_all_six_tasks_registered():
    assert EXPECTED <= set(ALL)


@pytest.mark.parametrize("name", ALL)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), size_index=st.integers(0, 5))
def test_read_inverts_render_also_under_noise_and_blur(name, seed, size_index):
    task = tasks.get(name)
    sizes = sizes_of(task)
    size = sizes[size_index % len(sizes)]
    rng = np.random.default_rng(seed)
    problem = task.generate(rng, size)
    states = [task.initial_state(problem)] + [step.state for step in task.trace(problem)]
    for state in states:
        image = task.render(state)
        assert image.mode == "RGB" and image.size[0] % 8 == 0 and image.size[1] % 8 == 0
        assert task.read(image) == state
        assert task.read(perturb(image, rng, sigma=0.1, blur=1.0)) == state


@pytest.mark.parametrize("name", ALL)
def test_palette_colours_are_far_apart(name):
    import sys

    task = tasks.get(name)
    modules = [sys.modules[k.__module__] for k in type(task).__mro__]  # a v1 task paints as its v0 world
    palette = getattr(task, "palette", None) or next(m.PALETTE for m in modules if hasattr(m, "PALETTE"))
    assert min_palette_distance(palette) >= 0.49


@pytest.mark.parametrize("name", ALL)
def test_gold_traces_score_100_percent(name):
    task = tasks.get(name)
    for size in sizes_of(task):
        for problem in generate_split(task, "test", size, 40, seed=3):
            for style in ("visual", "text"):
                trace = task.trace(problem, style)
                assert task.check(problem, trace[-1].thought).correct, (problem.id, style)
                actions = [step.action for step in trace if step.action is not None]
                assert all(isinstance(step.thought, str) and step.thought for step in trace)
                if task.kind == "mcq":
                    assert actions == problem.actions
            if task.kind == "nav":
                score = task.check(problem, problem.answer)
                assert score.correct and score.progress == 1.0 and score.valid and score.reached


def _baseline_problems(task, count=500):
    sizes = sizes_of(task, 3, 6) if task.min_size <= 3 else list(task.in_distribution)
    per_size = count // len(sizes)
    problems = [p for size in sizes for p in generate_split(task, "test", size, per_size, seed=11)]
    return problems[:count] if len(problems) >= count else problems


@pytest.mark.parametrize("name", [n for n in ALL if tasks.get(n).kind == "mcq"])
def test_mcq_baselines_score_at_chance(name):
    """Deterministic baselines (always A, copy the start) probe the generator for biases: their
    Wilson interval on 500 problems must contain chance. The random baseline is averaged over 20
    draws per problem so that its own sampling noise cannot decide the test."""
    task = tasks.get(name)
    problems = _baseline_problems(task)
    assert len(problems) >= 496
    chance = 1 / len(problems[0].options)
    for baseline in (baselines.always_a, baselines.copy_start):
        accuracy = rate(task.check(p, baseline(p)).correct for p in problems)
        assert accuracy.contains(chance), (name, baseline.__name__, accuracy, chance)
    rng = np.random.default_rng(0)
    draws = rate(task.check(p, baselines.random_option(p, rng)).correct for p in problems for _ in range(20))
    assert abs(draws.value - chance) < 0.02, (name, draws)


@pytest.mark.parametrize("name", [n for n in ALL if tasks.get(n).kind == "nav"])
def test_nav_baselines_score_zero(name):
    task = tasks.get(name)
    problems = _baseline_problems(task)
    for baseline in (baselines.empty_plan, baselines.copy_start):
        scores = [task.check(p, baseline(p)) for p in problems]
        assert not any(s.correct for s in scores)
        assert all(s.progress == 0.0 and not s.parse_failed for s in scores)


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_problems_different_seed_different_layouts(name):
    task = tasks.get(name)
    size = sizes_of(task)[2]
    first = [task.generate(np.random.default_rng(7), size).dumps() for _ in range(1)]
    a = [p.dumps() for p in generate_split(task, "train", size, 20, seed=5)]
    b = [p.dumps() for p in generate_split(task, "train", size, 20, seed=5)]
    c = generate_split(task, "train", size, 20, seed=6)
    assert a == b
    assert first == [task.generate(np.random.default_rng(7), size).dumps()]
    layouts_a = {task.layout_key(p) for p in generate_split(task, "train", size, 20, seed=5)}
    assert layouts_a != {task.layout_key(p) for p in c}


@pytest.mark.parametrize("name", ALL)
def test_splits_are_layout_disjoint_and_deduplicated(name):
    task = tasks.get(name)
    size = sizes_of(task)[1]
    train = generate_split(task, "train", size, 150, seed=1)
    test = generate_split(task, "test", size, 60, seed=2)
    assert not {task.layout_key(p) for p in train} & {task.layout_key(p) for p in test}
    assert len({task.problem_key(p) for p in train}) == len(train)
    assert len({p.id for p in train + test}) == len(train) + len(test)


@pytest.mark.parametrize("name", ALL)
@settings(max_examples=40, deadline=None)
@given(text=st.text(max_size=80))
def test_check_never_crashes_on_garbage(name, text):
    task = tasks.get(name)
    problem = generate_split(task, "test", sizes_of(task)[0], 1, seed=0)[0]
    score = task.check(problem, text)
    assert score.parse_failed == (score.parsed is None)
    if score.parse_failed:
        assert not score.correct


@pytest.mark.parametrize("name", ALL)
def test_empty_answer_is_a_parse_failure_not_a_wrong_answer(name):
    task = tasks.get(name)
    problem = generate_split(task, "test", sizes_of(task)[0], 1, seed=0)[0]
    for text in ("", "   ", "I am not sure."):
        score = task.check(problem, text)
        assert score.parse_failed and not score.correct


@pytest.mark.parametrize("name", ALL)
def test_problem_json_round_trip_rerenders_the_same_image(name):
    task = tasks.get(name)
    problem = generate_split(task, "val", sizes_of(task)[0], 1, seed=0)[0]
    again = tasks.Problem.from_json(__import__("json").loads(problem.dumps()))
    assert again == problem
    assert np.array_equal(np.asarray(again.image), np.asarray(task.render(task.initial_state(problem))))


@pytest.mark.parametrize("name", ALL)
def test_bad_sizes_are_rejected_with_the_valid_range(name):
    task = tasks.get(name)
    with pytest.raises(ValueError, match=r"size must be an integer in"):
        task.generate(np.random.default_rng(0), task.max_size + 1)


def test_unknown_task_lists_registered_names():
    with pytest.raises(KeyError) as info:
        tasks.get("sokoban-v0")
    message = str(info.value)
    for name in ALL:
        assert name in message


def test_unreadable_image_raises_value_error():
    from PIL import Image

    for name in ALL:
        task = tasks.get(name)
        with pytest.raises(ValueError):
            task.read(Image.new("RGB", (40, 48)))  # not square
        with pytest.raises((ValueError, TypeError)):
            task.read("not an image")


def test_tasks_import_without_torch(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np, tasks, tasks.splits, tasks.baselines, tasks.metrics\n"
        "for name in tasks.names():\n"
        "    t = tasks.get(name); p = t.generate(np.random.default_rng(0), t.in_distribution[0])\n"
        "    assert t.check(p, t.trace(p)[-1].thought).correct\n"
        "assert sys.modules['torch'] is None\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_short_names_mean_the_current_version_and_full_ids_stay_reproducible():
    from tasks.registry import CURRENT

    for short, family in (("maze", "maze-mcq"), ("frozenlake", "frozenlake-mcq"), ("minibehavior", "minibehavior-mcq")):
        assert tasks.get(short).id == tasks.get(family).id == CURRENT[family] == f"{family}-v1"
        assert tasks.get(f"{family}-v0").id == f"{family}-v0"
    assert tasks.get("maze-nav").id == "maze-nav-v0"  # no v1 of the planning tasks
    with pytest.raises(KeyError, match="unknown task"):
        tasks.get("maze-mcq-v9")
