"""The consistency verifier on every task: an error-free chain (oracle sketches, a policy that never
errs) scores 1 on every step, whatever the stated actions do under the rules (wall bumps,
revisits, actions after the episode ended, repeated pick-ups and drops); a wrong step scores 0."""
import numpy as np
import pytest

import tasks
from imagegen.base import OracleSketcher
from tasks.maze import random_maze
from vision_encoder.base import PixelPatchEncoder
from vot.policy import SimulatedPolicy
from vot.reasoner import Reasoner
from vot.verifiers import ConsistencyVerifier


def _scores(problems):
    task = tasks.get(problems[0].task)
    reasoner = Reasoner(SimulatedPolicy(0.0, seed=0), OracleSketcher(task), max_steps=80)
    verifier = ConsistencyVerifier()
    return [verifier.step_scores(p, chains[0]) for p, chains in zip(problems, reasoner.run(problems, 1))]


def _lake_problems(rng, count=12):
    lake = tasks.get("frozenlake-mcq")
    out = []
    for i in range(count):
        size = int(rng.integers(3, 7))
        desc = lake.random_desc(rng, size)
        actions = [str(a) for a in rng.choice(lake.actions, size=int(rng.integers(3, 4 * size)))]
        out.append(lake.from_layout(desc, actions))
    return out


def _maze_problems(rng, count=12):
    maze = tasks.get("maze-mcq")
    out = []
    for _ in range(count):
        size = int(rng.integers(3, 7))
        layout = random_maze(rng, size)
        start = agent = (int(rng.integers(size)), int(rng.integers(size)))
        walk = []
        for _ in range(int(rng.integers(2, 3 * size))):  # a random walk: backtracks and revisits
            moves = [a for a in maze.actions if layout.is_open(agent, a)]
            action = str(rng.choice(moves))
            walk.append(action)
            agent = {"up": (agent[0] - 1, agent[1]), "down": (agent[0] + 1, agent[1]),
                     "left": (agent[0], agent[1] - 1), "right": (agent[0], agent[1] + 1)}[action]
        if agent == start:
            continue
        others = [(r, c) for r in range(size) for c in range(size) if (r, c) not in (start, agent)]
        picks = rng.choice(len(others), size=3, replace=False)
        cells = [agent] + [others[i] for i in picks]
        order = rng.permutation(4)
        candidates = {"ABCD"[j]: cells[order[j]] for j in range(4)}
        out.append(maze.from_layout(layout, start, candidates, actions=walk))
    return out


def _room_problems(rng, count=12):
    room = tasks.get("minibehavior-mcq")
    out = []
    for _ in range(count):
        base = room.initial_state(room.generate(rng, int(rng.choice([7, 8]))))
        layout = {"size": base.size, "table": [list(c) for c in base.table], "printer": list(base.printer),
                  "agent": list(base.agent)}
        actions = [str(a) for a in rng.choice(room.actions, size=int(rng.integers(3, 16)))]  # bumps, repeats
        out.append(room.from_layout(layout, actions))
    return out


@pytest.mark.parametrize("make", [_lake_problems, _maze_problems, _room_problems])
def test_error_free_chains_score_one_on_every_step(make):
    problems = make(np.random.default_rng(7))
    task = tasks.get(problems[0].task)
    noop = revisit = 0
    for problem in problems:
        state = task.initial_state(problem)
        seen = [state.agent]
        for action in problem.actions:
            after = task.step(state, action)
            noop += after == state
            state = after
            seen.append(state.agent)
        revisit += len(set(seen)) < len(seen)
    assert noop > 0 or task.id.startswith("maze")  # the sequences contain actions the rules make no-ops
    assert revisit > 0
    for problem, scores in zip(problems, _scores(problems)):
        assert scores == [1.0] * (len(problem.actions) + 1), (problem.actions, scores)


@pytest.mark.parametrize("name", ["maze-nav", "frozenlake-nav", "minibehavior-nav"])
def test_error_free_plans_score_one_on_every_step(name):
    task = tasks.get(name)
    rng = np.random.default_rng(3)
    problems = [task.generate(rng, size) for size in (task.in_distribution * 2)]
    for scores in _scores(problems):
        assert scores and set(scores) == {1.0}


def test_the_issue_examples_frozenlake_bump_and_post_episode_actions():
    lake = tasks.get("frozenlake-mcq")
    corner = lake.from_layout(["SFF", "FHF", "FFG"], ["up", "right", "right", "down", "down"])  # bumps first
    fell = lake.from_layout(["SHF", "FFF", "FFG"], ["right", "down", "left"])  # in the hole, then two more
    assert corner.answer == "A" and fell.answer == "B"
    assert _scores([corner, fell]) == [[1.0] * 6, [1.0] * 4]


def test_wrong_steps_score_zero():
    lake = tasks.get("frozenlake-mcq")
    problem = lake.from_layout(["SFF", "FHF", "FFG"], ["right", "right", "down", "down"])
    reasoner = Reasoner(SimulatedPolicy(0.0), OracleSketcher(lake))
    chain = reasoner.run([problem], 1)[0][0]
    verifier = ConsistencyVerifier()
    chain.steps[1].thought = "Go down."  # not the stated action: the sketch no longer matches either
    assert verifier.step_scores(problem, chain)[1] == 0.0
    chain = reasoner.run([problem], 1)[0][0]
    chain.steps[2].sketch = chain.steps[0].sketch  # a misdrawn sketch
    assert verifier.step_scores(problem, chain)[2] == 0.0
    nav = tasks.get("frozenlake-nav").from_layout(["SFF", "FHF", "FFG"])
    chain = Reasoner(SimulatedPolicy(0.0), OracleSketcher("frozenlake-nav")).run([nav], 1)[0][0]
    chain.steps[0].thought = "Go up."  # a bump is a wrong move in a plan
    assert verifier.step_scores(nav, chain)[0] == 0.0
