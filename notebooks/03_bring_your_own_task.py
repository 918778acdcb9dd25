# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Bring your own spatial task: a key-and-door grid
#
# A task is a grid world (state, `render`, `read`, `step`, `is_valid`) plus a question format
# (`tasks.formats.MCQFormat` or `NavFormat`). Write those, `tasks.register` it, and everything else —
# splits, the reasoning loop, the sketchers, the verifiers, the strategies and the viewer — works on
# it unchanged. The pattern follows `tasks/frozenlake.py`.
#
# **The world.** An n×n room split by a wall column with one locked door in it. The agent (red)
# starts on the left with a key (yellow) somewhere on its side; the goal (green) is on the right.
# Stepping on the key picks it up (the agent turns orange); walking into the door with the key opens
# it (the door disappears); without the key the door blocks like a wall.
#
# **The question** (multiple choice, like MVoT's FROZENLAKE): after the stated moves, A. the agent is
# at the goal; B. it holds the key but is not at the goal; C. it never picked up the key.

# %%
from collections import deque
from dataclasses import dataclass

import numpy as np

import tasks
from tasks import grid
from tasks.core import Problem, Task
from tasks.formats import MCQFormat
from tasks.parsing import plan_text

Cell = tuple[int, int]
# One flat colour per cell kind, far apart so `read` survives noise.
KINDS = ["floor", "wall", "key", "door", "goal", "agent", "agent+key", "agent@goal"]
PALETTE = [(1, 1, 1), (0, 0, 0), (1, 1, 0), (0.5, 0.25, 0), (0, 0.75, 0), (1, 0, 0), (1, 0.5, 0), (0, 0, 1)]
OPTIONS = {"A": "At the goal", "B": "Holds the key but not at the goal", "C": "Never picked up the key"}


@dataclass(frozen=True)
class KeyDoorState:
    """Immutable and hashable, so `read(render(s)) == s` can be checked. ``key`` / ``door`` are None
    once picked up / opened."""

    walls: tuple[str, ...]  # rows of '#' (wall) and '.' (floor)
    agent: Cell
    key: Cell | None
    door: Cell | None
    goal: Cell
    has_key: bool

    @property
    def size(self) -> int:
        return len(self.walls)


class KeyDoorMCQ(MCQFormat, Task):
    id = "keydoor-mcq-v0"
    description = "Key and door: after the stated moves, is the agent at the goal (A), holding the key (B), or keyless (C)?"
    actions = ("up", "down", "left", "right")
    min_size, max_size = 4, 10
    in_distribution, out_of_distribution = (4, 5, 6), (7, 8)
    cell_px = 8
    default_options = OPTIONS

    # --- the world ---------------------------------------------------------------------------
    def render(self, state: KeyDoorState):
        n = state.size
        kinds = np.zeros((n, n), dtype=np.int64)
        for r in range(n):
            for c in range(n):
                kinds[r, c] = KINDS.index(self._kind(state, (r, c)))
        return grid.to_image(grid.paint_cells(kinds, PALETTE, self.cell_px))  # (8n, 8n, 3)

    def _kind(self, state: KeyDoorState, cell: Cell) -> str:
        if cell == state.agent:
            return "agent@goal" if cell == state.goal else "agent+key" if state.has_key else "agent"
        if state.walls[cell[0]][cell[1]] == "#":
            return "wall"
        return {state.key: "key", state.door: "door", state.goal: "goal"}.get(cell, "floor")

    def read(self, image) -> KeyDoorState:
        n = grid.grid_size_from_image(image, self.cell_px)
        means = grid.cell_means(grid.to_array(image), n, n, self.cell_px, margin=2)  # (n, n, 3)
        kinds = [[KINDS[k] for k in row] for row in grid.nearest_kind(means, PALETTE)]  # (n, n) names
        where = {name: [(r, c) for r in range(n) for c in range(n) if kinds[r][c] == name] for name in KINDS}
        agents = where["agent"] + where["agent+key"] + where["agent@goal"]
        goals = where["goal"] + where["agent@goal"]
        if len(agents) != 1 or len(goals) != 1 or len(where["key"]) > 1 or len(where["door"]) > 1:
            raise ValueError(f"expected one agent, one goal and at most one key and door; found {len(agents)} "
                             f"agents, {len(goals)} goals, {len(where['key'])} keys, {len(where['door'])} doors")
        walls = tuple("".join("#" if kind == "wall" else "." for kind in row) for row in kinds)
        key, door = (where["key"] or [None])[0], (where["door"] or [None])[0]
        return KeyDoorState(walls, agents[0], key, door, goals[0], has_key=not where["agent"])

    def _blocked(self, state: KeyDoorState, cell: Cell, has_key: bool) -> bool:
        r, c = cell
        if not (0 <= r < state.size and 0 <= c < state.size) or state.walls[r][c] == "#":
            return True
        return cell == state.door and not has_key

    def is_valid(self, state: KeyDoorState, action: str) -> bool:
        return action in self.actions and not self._blocked(state, grid.move(state.agent, action), state.has_key)

    def step(self, state: KeyDoorState, action: str) -> KeyDoorState:
        if action not in self.actions:
            raise ValueError(f"unknown action {action!r}; expected one of {self.actions}")
        if not self.is_valid(state, action):
            return state  # bumping a wall or the locked door: stay
        agent = grid.move(state.agent, action)
        has_key = state.has_key or agent == state.key
        return KeyDoorState(state.walls, agent, None if agent == state.key else state.key,
                            None if agent == state.door else state.door, state.goal, has_key)

    def marked_cells(self, state: KeyDoorState) -> frozenset:
        return frozenset({state.agent})

    def describe(self, state: KeyDoorState) -> str:  # used by text-style traces
        holding = "holding the key" if state.has_key else "without the key"
        return f"Now at row {state.agent[0]}, column {state.agent[1]}, {holding}."

    def state_to_json(self, state: KeyDoorState) -> dict:
        # "layout" is what splits hash to keep train and test rooms apart
        return {"layout": {"walls": list(state.walls), "key": state.key and list(state.key),
                           "door": state.door and list(state.door), "goal": list(state.goal)},
                "agent": list(state.agent), "has_key": state.has_key}

    def state_from_json(self, record: dict) -> KeyDoorState:
        layout = record["layout"]
        cell = lambda value: tuple(value) if value is not None else None  # noqa: E731
        return KeyDoorState(tuple(layout["walls"]), tuple(record["agent"]), cell(layout["key"]), cell(layout["door"]),
                            tuple(layout["goal"]), bool(record["has_key"]))

    # --- the question --------------------------------------------------------------------------
    def answer_for(self, state: KeyDoorState) -> str:
        return "A" if state.agent == state.goal else "B" if state.has_key else "C"

    def generate(self, rng: np.random.Generator, size: int) -> Problem:
        """Outcome first (uniform over A-C, so no heuristic that ignores the moves beats 1/3), then a
        room, then the shortest moves realising it. All randomness from ``rng``."""
        self.check_size(size)
        outcome = "ABC"[int(rng.integers(3))]
        while True:
            state = self._random_room(rng, size)
            actions = self._moves(rng, state, outcome)
            if actions:
                return self.from_layout(state, actions)

    def _random_room(self, rng, n: int) -> KeyDoorState:
        split = int(rng.integers(1, n - 1))  # the wall column
        walls = tuple("".join("#" if c == split else "." for c in range(n)) for _ in range(n))
        left = [(r, c) for r in range(n) for c in range(split)]
        right = [(r, c) for r in range(n) for c in range(split + 1, n)]
        agent, key = (left[i] for i in rng.choice(len(left), size=2, replace=False))
        goal = right[int(rng.integers(len(right)))]
        door = (int(rng.integers(n)), split)
        walls = tuple(row[:split] + "." + row[split + 1:] if r == door[0] else row for r, row in enumerate(walls))
        return KeyDoorState(walls, agent, key, door, goal, False)

    def _path(self, state: KeyDoorState, start: Cell, target: Cell, has_key: bool, avoid=()) -> list[str] | None:
        """Shortest moves start -> target (BFS), not passing through ``avoid``."""
        previous = {start: None}
        queue = deque([start])
        while queue:
            cell = queue.popleft()
            if cell == target:
                moves = []
                while previous[cell] is not None:
                    cell, action = previous[cell]
                    moves.append(action)
                return moves[::-1]
            for action in self.actions:
                nxt = grid.move(cell, action)
                if nxt not in previous and nxt not in avoid and not self._blocked(state, nxt, has_key):
                    previous[nxt] = (cell, action)
                    queue.append(nxt)
        return None

    def _moves(self, rng, state: KeyDoorState, outcome: str) -> list[str] | None:
        to_key = self._path(state, state.agent, state.key, False)
        free = [(r, c) for r in range(state.size) for c in range(state.size)
                if state.walls[r][c] == "." and (r, c) not in (state.door, state.goal)]
        if outcome in "AB":
            target = state.goal if outcome == "A" else free[int(rng.integers(len(free)))]
            rest = self._path(state, state.key, target, True, avoid=() if outcome == "A" else {state.goal})
            return to_key + rest if rest is not None else None
        keyless = [cell for cell in free if cell not in (state.agent, state.key)
                   and self._path(state, state.agent, cell, False, avoid={state.key})]
        if not keyless:
            return None
        return self._path(state, state.agent, keyless[int(rng.integers(len(keyless)))], False, avoid={state.key})

    def from_layout(self, state: KeyDoorState, actions: list[str]) -> Problem:
        end = state
        for action in actions:
            end = self.step(end, action)
        n = state.size
        prompt = (f"The image shows a {n}x{n} room. Black cells are walls, the brown cell is a locked door, the "
                  "yellow cell is a key, the green cell is the goal and the red cell is the agent (orange once it "
                  "holds the key). Stepping on the key picks it up; the door opens only for an agent with the key.\n"
                  f"Full Action Sequence: {plan_text(actions)}\n"
                  "Question: where does the agent end up? A. At the goal; B. Holds the key but not at the goal; "
                  "C. Never picked up the key. Answer with \"The answer is X.\"")
        return Problem(id="", task=self.id, prompt=prompt, state=self.state_to_json(state), answer=self.answer_for(end),
                       options=dict(OPTIONS), actions=list(actions), meta={"size": n, "path_length": len(actions)})


task = tasks.register(KeyDoorMCQ())
print(tasks.get("keydoor-mcq-v0"), "registered among", len(tasks.names()), "tasks")

# %% [markdown]
# ## Check the contract before using it
#
# The same checks every built-in task passes: same seed, same problem; the image reads back as the
# state, also under the noise model the readers are held to (`tasks.perturb`); the gold trace scores
# 100%; and the answers are spread over the options.

# %%
from tasks.splits import generate_split

problems = generate_split(task, "test", size=5, count=24, seed=0)
again = generate_split(task, "test", size=5, count=24, seed=0)
assert [p.dumps() for p in problems] == [p.dumps() for p in again]
rng = np.random.default_rng(0)
for problem in problems:
    trace = task.trace(problem)
    assert task.check(problem, trace[-1].thought).correct
    for state in [task.initial_state(problem)] + [step.state for step in trace]:
        assert task.read(task.render(state)) == state
        assert task.read(tasks.perturb(task.render(state), rng)) == state
print("answers:", {letter: sum(p.answer == letter for p in problems) for letter in "ABC"})
print(problems[0].prompt)
problems[0].image.resize((160, 160), resample=0)

# %% [markdown]
# ## Run the loop on it
#
# The reference policy and the oracle sketcher know nothing about keys and doors: they use the
# task's gold trace, `read`, `step` and `render`. Best-of-N with the consistency verifier, against
# one chain per problem.

# %%
from imagegen import OracleSketcher
from vot.policy import SimulatedPolicy
from vot.reasoner import Reasoner
from vot.strategies import run_strategy
from vot.verifiers import ConsistencyVerifier

reasoner = Reasoner(SimulatedPolicy(error_rate=0.3, seed=0), OracleSketcher(task), max_steps=32)
for strategy, settings in (("greedy", {}), ("best_of_n", {"n": 4})):
    results = run_strategy(strategy, problems, reasoner, ConsistencyVerifier(), **settings)
    accuracy = np.mean([r.answer is not None and task.check(p, r.answer).correct for p, r in zip(problems, results)])
    print(f"{strategy:<10} {settings}: accuracy {accuracy:.2f} over {len(problems)} problems")

# %% [markdown]
# ## Step through it
#
# The viewer re-generates the problem from its id (the task is registered) and marks each chain's
# first step where sketch and thought disagree.

# %%
from vot.viewer import ChainViewer

result = next((r for r in results if any(c.answer != results[0].chains[0].answer for c in r.chains)), results[0])
ChainViewer(result.chains)
