"""FrozenLake: MVoT's FROZENLAKE multiple choice (`frozenlake-mcq-v0`) and route planning
(`frozenlake-nav-v0`).

Maps are gymnasium ``desc`` rows (``S`` start, ``F`` frozen, ``H`` hole, ``G`` goal). Hole
patterns come from gymnasium's ``generate_random_map`` (seeded from the passed-in generator); S and
G are then placed at random frozen cells, as in MVoT's released maps. Moves are deterministic
(``is_slippery=False``): moving off the grid leaves the agent in place, and stepping on H or G ends
the episode (later actions change nothing). Each 8-px cell is one flat colour per (tile, agent).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
from PIL import Image

from tasks import grid
from tasks.core import InvalidLayout, Problem, Task
from tasks.formats import MCQFormat, NavFormat
from tasks.parsing import plan_text

Cell = tuple[int, int]
TILES = "SFHG"
# (tile, agent here) -> colour, all on the {0, .5, 1}^3 lattice.
KINDS = [(tile, agent) for tile in TILES for agent in (False, True)]
PALETTE = [
    (1, 1, 1), (1, 0, 0),  # S: white / agent on its start (red)
    (0.5, 1, 1), (1, 0.5, 0.5),  # F: ice / agent on ice (pink)
    (0, 0, 0.5), (0.5, 0, 0),  # H: hole / agent fell in
    (1, 1, 0), (1, 0.5, 0),  # G: goal / agent reached the goal
]
OPTIONS = {"A": "Action Success", "B": "Fall into the Hole", "C": "Agent Safe but Fail to Reach Destination"}
GYM_ACTIONS = {"left": 0, "down": 1, "right": 2, "up": 3}  # gymnasium's FrozenLake action ids
CELL_PX = 8


@dataclass(frozen=True)
class LakeState:
    desc: tuple[str, ...]  # gymnasium rows, e.g. ("SFF", "FHF", "FFG")
    agent: Cell

    @property
    def size(self) -> int:
        return len(self.desc)

    def tile(self, cell: Cell) -> str:
        return self.desc[cell[0]][cell[1]]

    @property
    def status(self) -> str:
        """'fell', 'goal' or 'safe'."""
        return {"H": "fell", "G": "goal"}.get(self.tile(self.agent), "safe")


def validate_desc(rows: Sequence[str]) -> tuple[str, ...]:
    """Check a FrozenLake map; raise InvalidLayout naming what is wrong."""
    rows = tuple(r.decode() if isinstance(r, bytes) else "".join(r) for r in rows)
    if not rows or not rows[0]:
        raise InvalidLayout("FrozenLake map is empty")
    if any(len(r) != len(rows) for r in rows):
        raise InvalidLayout(f"FrozenLake map must be square; got {len(rows)} rows of lengths {[len(r) for r in rows]}")
    bad = {ch for r in rows for ch in r} - set(TILES)
    if bad:
        raise InvalidLayout(f"FrozenLake map has unknown tiles {sorted(bad)}; use S, F, H, G")
    for tile, name in (("S", "start"), ("G", "goal")):
        count = sum(r.count(tile) for r in rows)
        if count != 1:
            raise InvalidLayout(f"FrozenLake map needs exactly one {name} ({tile}), found {count}")
    start, goal = _find(rows, "S"), _find(rows, "G")
    if goal not in _safe_distances(rows, start, through_goal=True):
        raise InvalidLayout(f"FrozenLake goal {goal} is unreachable from the start {start}")
    return rows


def _find(rows: Sequence[str], tile: str) -> Cell:
    return next((r, c) for r, row in enumerate(rows) for c, ch in enumerate(row) if ch == tile)


def _safe_distances(rows: Sequence[str], source: Cell, through_goal: bool = False) -> dict[Cell, int]:
    """BFS distances from ``source`` over cells that are not holes (nor the goal, unless allowed)."""
    n = len(rows)
    seen = {source: 0}
    queue = deque([source])
    while queue:
        cell = queue.popleft()
        if rows[cell[0]][cell[1]] == "G" and cell != source and through_goal:
            continue  # the episode ends on the goal: do not walk through it
        for direction in grid.NEIGHBOURS:
            r, c = grid.move(cell, direction)
            if 0 <= r < n and 0 <= c < n and (r, c) not in seen and rows[r][c] != "H":
                if rows[r][c] == "G" and not through_goal:
                    continue
                seen[(r, c)] = seen[cell] + 1
                queue.append((r, c))
    return seen


def _path(rows: Sequence[str], start: Cell, goal: Cell) -> list[str]:
    """Shortest hole-free action path start -> goal (BFS from the goal, then greedy descent)."""
    distance = _safe_distances(rows, goal, through_goal=True)
    if start not in distance:
        raise InvalidLayout(f"{goal} is unreachable from {start}")
    actions, cell = [], start
    while cell != goal:
        for direction in grid.NEIGHBOURS:
            nxt = grid.move(cell, direction)
            if distance.get(nxt) == distance[cell] - 1:
                actions.append(direction)
                cell = nxt
                break
    return actions


class LakeWorld(Task):
    actions = ("up", "down", "left", "right")
    min_size, max_size = 2, 16
    in_distribution, out_of_distribution = (3, 4, 5, 6), (7, 8)
    cell_px = CELL_PX
    frozen_probability = 0.8  # gymnasium's default p

    def random_desc(self, rng: np.random.Generator, size: int) -> tuple[str, ...]:
        """Holes from gymnasium's generate_random_map, then S and G moved to random frozen cells
        with the goal reachable from the start."""
        from gymnasium.envs.toy_text.frozen_lake import generate_random_map

        while True:
            rows = generate_random_map(size, p=self.frozen_probability, seed=int(rng.integers(2**31 - 1)))
            board = [list(r.replace("S", "F").replace("G", "F")) for r in rows]
            frozen = [(r, c) for r in range(size) for c in range(size) if board[r][c] == "F"]
            if len(frozen) < 2:
                continue
            i, j = rng.choice(len(frozen), size=2, replace=False)
            (sr, sc), (gr, gc) = frozen[i], frozen[j]
            board[sr][sc], board[gr][gc] = "S", "G"
            rows = tuple("".join(r) for r in board)
            if (gr, gc) in _safe_distances(rows, (sr, sc), through_goal=True):
                return rows

    def render(self, state: LakeState) -> Image.Image:
        n = state.size
        kinds = np.array([[KINDS.index((state.desc[r][c], (r, c) == state.agent)) for c in range(n)] for r in range(n)])
        return grid.to_image(grid.paint_cells(kinds, PALETTE, CELL_PX))  # (8n, 8n, 3)

    def read(self, image: Image.Image) -> LakeState:
        n = grid.grid_size_from_image(image, CELL_PX)
        means = grid.cell_means(grid.to_array(image), n, n, CELL_PX, margin=2)  # (n, n, 3)
        kinds = grid.nearest_kind(means, PALETTE)  # (n, n)
        desc = tuple("".join(KINDS[k][0] for k in row) for row in kinds)
        agents = [(r, c) for r in range(n) for c in range(n) if KINDS[kinds[r, c]][1]]
        if len(agents) != 1:
            raise ValueError(f"expected exactly one agent in the FrozenLake image, found {len(agents)}")
        return LakeState(desc, agents[0])

    def is_valid(self, state: LakeState, action: str) -> bool:
        if action not in self.actions or state.status != "safe":
            return False
        r, c = grid.move(state.agent, action)
        return 0 <= r < state.size and 0 <= c < state.size

    def step(self, state: LakeState, action: str) -> LakeState:
        if action not in self.actions:
            raise ValueError(f"unknown FrozenLake action {action!r}; expected one of {self.actions}")
        if state.status != "safe":
            return state
        r, c = grid.move(state.agent, action)
        if not (0 <= r < state.size and 0 <= c < state.size):
            return state
        return LakeState(state.desc, (r, c))

    def marked_cells(self, state: LakeState) -> frozenset:
        return frozenset({state.agent})

    def describe(self, state: LakeState) -> str:
        where = f"Now at row {state.agent[0]}, column {state.agent[1]}"
        return where + {"safe": ", safe.", "fell": ", in a hole.", "goal": ", at the goal."}[state.status]

    def state_to_json(self, state: LakeState) -> dict:
        return {"layout": list(state.desc), "agent": list(state.agent)}

    def state_from_json(self, record: dict) -> LakeState:
        return LakeState(tuple(record["layout"]), tuple(record["agent"]))

    def start_state(self, desc: Sequence[str]) -> LakeState:
        rows = validate_desc(desc)
        return LakeState(rows, _find(rows, "S"))


class FrozenLakeMCQ(MCQFormat, LakeWorld):
    id = "frozenlake-mcq-v0"
    description = "MVoT FROZENLAKE: follow an action sequence; A reached the goal, B fell in a hole, C safe elsewhere."
    default_options = OPTIONS
    extra_action_probability = 0.3  # MVoT appends actions after the episode ends

    def generate(self, rng: np.random.Generator, size: int) -> Problem:
        """The outcome class is drawn uniformly first, then a map where it is possible, then the
        shortest action sequence realising it (so heuristics that ignore the actions score 1/3)."""
        self.check_size(size)
        outcome = "ABC"[int(rng.integers(3))]
        while True:
            rows = self.random_desc(rng, size)
            actions = self._sequence(rng, rows, outcome)
            if actions is not None:
                return self.from_layout(rows, actions)

    def _sequence(self, rng: np.random.Generator, rows: tuple[str, ...], outcome: str) -> list[str] | None:
        start = _find(rows, "S")
        if outcome == "A":
            actions = _path(rows, start, _find(rows, "G"))
        else:
            safe = _safe_distances(rows, start)  # reachable without touching H or G
            if outcome == "B":
                targets = sorted({grid.move(c, d) for c in safe for d in grid.NEIGHBOURS
                                  if 0 <= grid.move(c, d)[0] < len(rows) and 0 <= grid.move(c, d)[1] < len(rows)
                                  and rows[grid.move(c, d)[0]][grid.move(c, d)[1]] == "H"})
            else:
                targets = sorted(c for c in safe if c != start)
            if not targets:
                return None
            target = targets[int(rng.integers(len(targets)))]
            actions = self._safe_route(rows, start, target)
        if outcome in "AB" and rng.random() < self.extra_action_probability:
            actions += [self.actions[int(rng.integers(4))] for _ in range(int(rng.integers(1, 3)))]
        return actions

    def _safe_route(self, rows: tuple[str, ...], start: Cell, target: Cell) -> list[str]:
        """Shortest route that avoids holes and the goal until the target (which may be a hole)."""
        for direction in grid.NEIGHBOURS:
            before = grid.move(target, {"up": "down", "down": "up", "left": "right", "right": "left"}[direction])
            if rows[target[0]][target[1]] == "H" and before in _safe_distances(rows, start):
                return self._safe_route(rows, start, before) + [direction]
        masked = tuple("".join("H" if ch == "G" else ch for ch in row) for row in rows)  # never step on G
        masked = tuple(row[:target[1]] + "G" + row[target[1] + 1:] if r == target[0] else row for r, row in enumerate(masked))
        return _path(masked, start, target)

    def answer_for(self, state: LakeState) -> str:
        """The option that describes ``state`` as the end of the sequence."""
        return {"goal": "A", "fell": "B", "safe": "C"}[state.status]

    def from_layout(self, desc: Sequence[str], actions: Sequence[str], meta: dict | None = None) -> Problem:
        """A problem from gymnasium ``desc`` rows and an action sequence; the answer is simulated."""
        state = self.start_state(desc)
        actions = list(actions)
        unknown = [a for a in actions if a not in self.actions]
        if unknown:
            raise ValueError(f"unknown FrozenLake actions {unknown}; expected {self.actions}")
        end = state
        for action in actions:
            end = self.step(end, action)
        answer = self.answer_for(end)
        n = state.size
        prompt = (
            f"The image shows a {n}x{n} frozen lake. The red cell is the agent on its start tile, light blue is "
            "frozen ice, dark blue cells are holes and the yellow cell is the goal. Moves are deterministic; the "
            "episode ends when the agent falls into a hole or reaches the goal.\n"
            f"Full Action Sequence: {plan_text(actions)}\n"
            "Question: what happens? A. Action Success (the agent reaches the goal); B. Fall into the Hole; "
            "C. Agent Safe but Fail to Reach Destination. Answer with \"The answer is X.\""
        )
        return Problem(
            id="", task=self.id, prompt=prompt, state=self.state_to_json(state), answer=answer,
            options=dict(OPTIONS), actions=actions, meta={"size": n, "path_length": len(actions), **(meta or {})},
        )


class FrozenLakeNav(NavFormat, LakeWorld):
    id = "frozenlake-nav-v0"
    description = "FrozenLake route planning (VPRL): give the moves from the start to the goal avoiding holes."

    def generate(self, rng: np.random.Generator, size: int) -> Problem:
        self.check_size(size)
        return self.from_layout(self.random_desc(rng, size))

    def from_layout(self, desc: Sequence[str], meta: dict | None = None) -> Problem:
        """A planning problem from gymnasium ``desc`` rows (S and G anywhere; G must be reachable)."""
        state = self.start_state(desc)
        plan = _path(state.desc, state.agent, _find(state.desc, "G"))
        n = state.size
        prompt = (
            f"The image shows a {n}x{n} frozen lake. The red cell is the agent on the start, light blue is frozen "
            "ice, dark blue cells are holes and the yellow cell is the goal.\nQuestion: give the shortest sequence "
            "of moves (Go up / Go down / Go left / Go right) that takes the agent to the goal without falling into a "
            "hole. Answer with \"The answer is: Go ... .\""
        )
        return Problem(
            id="", task=self.id, prompt=prompt, state=self.state_to_json(state), answer=plan_text(plan),
            meta={"size": n, "path_length": len(plan), **(meta or {})},
        )

    def goal_distance(self, problem: Problem, state: LakeState) -> int | None:
        return _goal_distances(state.desc).get(state.agent)

    def is_goal(self, problem: Problem, state: LakeState) -> bool:
        return state.status == "goal"


@lru_cache(maxsize=4096)
def _goal_distances(desc: tuple[str, ...]) -> dict[Cell, int]:
    distances = _safe_distances(desc, _find(desc, "G"), through_goal=True)
    return {cell: d for cell, d in distances.items() if desc[cell[0]][cell[1]] != "H"}
