"""The shipped bundles load by name, reason through the real loop, and `vot bench maze` runs one."""
import json

import pytest

import vot
from tasks.splits import generate_split
from vot.bundle import read_spec, resolve, shipped
from vot.cli import main

NAMES = sorted(shipped())


def test_every_mcq_environment_ships_a_bundle():
    assert {"maze-mcq-v0", "frozenlake-mcq-v0", "minibehavior-mcq-v0"} <= set(NAMES)  # v0 stays reproducible
    for family in ("maze-mcq", "frozenlake-mcq", "minibehavior-mcq"):
        assert resolve(family.split("-")[0]) == resolve(family) == shipped()[f"{family}-v1"]  # the short names mean v1


@pytest.mark.parametrize("name", NAMES)
def test_a_shipped_bundle_runs_chains_with_its_own_sketches(name):
    spec = read_spec(resolve(name))
    reasoner = vot.load(name)
    problem = generate_split(spec.task, "val", 4 if "minibehavior" not in name else 7, 1)[0]
    [chain] = reasoner.run([problem], n=1, greedy=True)[0]
    assert chain.finished and chain.steps[0].sketch is not None
    assert all(len(s.logprobs) > 0 for s in chain.steps)
    assert reasoner.label.startswith("small-vot+")


# Greedy accuracy of each shipped bundle, with its own sketcher, on the first 12 test problems of one
# in-distribution size: the shipped weights are what the model cards report, not just loadable.
# (frozenlake-nav: 88% at size 5 on 100 test problems, its card; these 12 it solves all. maze-nav: 98%
# at size 5 on 50, its card; 11 of these 12;
# frozenlake-nav-v1: 100% at size 5 on 50; minibehavior-nav: 94% at size 7 on 50, their cards; 10 of these 12.)
SOLVES = {"frozenlake-mcq": (4, 12), "maze-mcq": (4, 12), "minibehavior-mcq": (8, 12), "frozenlake-nav": (5, 10),
          "maze-nav": (5, 11), "frozenlake-nav-v1": (5, 12), "minibehavior-nav": (7, 10)}


@pytest.mark.parametrize("name", sorted(SOLVES))
def test_a_shipped_bundle_solves_test_problems(name):
    import tasks

    size, at_least = SOLVES[name]
    spec = read_spec(resolve(name))
    task = tasks.get(spec.task)
    problems = generate_split(task, "test", size, 12)
    results = vot.load(name).run(problems, n=1, greedy=True)
    correct = sum(task.check(p, chains[0].answer).correct for p, chains in zip(problems, results) if chains[0].answer)
    assert correct >= at_least, f"{name}: {correct}/12 correct at size {size}"


def test_the_self_improved_lake_bundle_ships_beside_the_default_and_solves_larger_lakes():
    """frozenlake-mcq-v1-improved (four consistency rounds at sizes 7-8, its card): the short names
    still mean the default bundle; on the first 12 size-7 test lakes it solves all, the default 6."""
    import tasks

    assert resolve("frozenlake") == resolve("frozenlake-mcq-v1") == shipped()["frozenlake-mcq-v1"]
    assert read_spec(resolve("frozenlake-mcq-v1-improved")).task == "frozenlake-mcq-v1"
    task = tasks.get("frozenlake-mcq-v1")
    problems = generate_split(task, "test", 7, 12)
    solved = {name: sum(task.check(p, chains[0].answer).correct for p, chains in
                        zip(problems, vot.load(name).run(problems, n=1, greedy=True)) if chains[0].answer)
              for name in ("frozenlake-mcq-v1-improved", "frozenlake")}
    assert solved["frozenlake-mcq-v1-improved"] >= 11 and solved["frozenlake"] <= 8


def test_the_self_improved_maze_bundle_ships_beside_the_default_and_solves_larger_mazes():
    """maze-mcq-v1-improved (position gaps on sizes 3-6, then two consistency rounds at 11 and 12, its
    card): the short names still mean the default bundle; on the first 12 test mazes of 12x12 it
    solves all, the default 5 (its chains stop after about 22 steps, BENCHMARKS.md session 19)."""
    import tasks

    assert resolve("maze") == resolve("maze-mcq-v1") == shipped()["maze-mcq-v1"]
    assert read_spec(resolve("maze-mcq-v1-improved")).task == "maze-mcq-v1"
    task = tasks.get("maze-mcq-v1")
    problems = generate_split(task, "test", 12, 12)
    solved = {name: sum(task.check(p, chains[0].answer).correct for p, chains in
                        zip(problems, vot.load(name).run(problems, n=1, greedy=True)) if chains[0].answer)
              for name in ("maze-mcq-v1-improved", "maze")}
    assert solved["maze-mcq-v1-improved"] >= 11 and solved["maze"] <= 8


def test_vot_bench_maze_defaults_to_the_shipped_bundle(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["bench", "maze", "--size", "3", "--count", "2", "--n", "1", "--strategy", "greedy",
                 "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["policy"] == "default" and summary["reference_components"] == []
    assert summary["metrics"]["greedy@1"]["accuracy"]["n"] == 2
    assert "REFERENCE components: none" in capsys.readouterr().out
