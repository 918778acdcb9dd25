"""Mazes: MVoT's MAZE multiple choice (`maze-mcq-v0`) and route planning (`maze-nav-v0`).

A maze of side n is drawn on an (8n x 8n) image: each cell is 8 px, walls are 2-px black lines on
cell borders (open passages are white), and a cell's fill colour says what is on it (a candidate
mark A-D or the goal G, and whether the agent is there or has been there). Every fill colour is a
point of the {0, .5, 1}^3 lattice, so any two are at least 0.5 apart in RGB: red and green say the
mark, blue the trail (see `_TRAIL_BLUE`).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Sequence

import numpy as np
from PIL import Image

from tasks import grid
from tasks.core import InvalidLayout, Problem, Task
from tasks.formats import MCQFormat, NavFormat
from tasks.parsing import plan_text

Cell = tuple[int, int]
MARKS = (None, "A", "B", "C", "D", "G")
TRAIL = ("none", "visited", "agent")
# The trail owns the blue channel (1 none, .5 visited, 0 agent) and the mark owns red and green, so the
# agent is "blue < 1/4" whatever it stands on and moving it never changes a mark's red or green. (The
# first palette blended the agent's red into the mark's colour: agent-on-A looked like candidate D, and
# the sketcher recoloured candidates instead of moving the agent.)
_TRAIL_BLUE = {"none": 1.0, "visited": 0.5, "agent": 0.0}
# Every mark is at least 1.0 from white (the commonest cell), so a long rollout does not fade it: a pink
# goal (1, .5, 1), only 0.5 from white, faded to white in 13% of 6x6 navigation rollouts.
_MARK_RED_GREEN = {None: (1, 1), "A": (0, 0.5), "B": (0, 1), "C": (1, 0), "D": (0.5, 0), "G": (0, 0)}
_COLOURS = {mark: tuple((*red_green, _TRAIL_BLUE[trail]) for trail in TRAIL)
            for mark, red_green in _MARK_RED_GREEN.items()}  # (mark) -> one colour per TRAIL entry
KINDS = [(mark, trail) for mark in MARKS for trail in TRAIL]
PALETTE = [_COLOURS[mark][TRAIL.index(trail)] for mark, trail in KINDS]
MARK_NAMES = {"A": "blue", "B": "cyan", "C": "magenta", "D": "purple", "G": "dark blue"}  # G: black under the agent
AGENT_NAME = "yellow"  # the agent on an unmarked cell; a visited unmarked cell is light yellow
CELL_PX = 8


@dataclass(frozen=True)
class MazeLayout:
    """Walls of an n x n maze. ``open_right[r][c]``: passage (r,c)-(r,c+1); ``open_down[r][c]``:
    passage (r,c)-(r+1,c). Shapes (n, n-1) and (n-1, n)."""

    size: int
    open_right: tuple[tuple[bool, ...], ...]
    open_down: tuple[tuple[bool, ...], ...]

    def __post_init__(self):
        n = self.size
        if n < 1:
            raise InvalidLayout(f"maze size must be positive, got {n}")
        if len(self.open_right) != n or any(len(row) != n - 1 for row in self.open_right):
            raise InvalidLayout(f"open_right must be {n} rows of {n - 1} flags")
        if len(self.open_down) != n - 1 or any(len(row) != n for row in self.open_down):
            raise InvalidLayout(f"open_down must be {n - 1} rows of {n} flags")

    def is_open(self, cell: Cell, direction: str) -> bool:
        r, c = cell
        n = self.size
        if direction == "right":
            return c < n - 1 and self.open_right[r][c]
        if direction == "left":
            return c > 0 and self.open_right[r][c - 1]
        if direction == "down":
            return r < n - 1 and self.open_down[r][c]
        if direction == "up":
            return r > 0 and self.open_down[r - 1][c]
        raise ValueError(f"unknown direction {direction!r}")

    def neighbours(self, cell: Cell) -> list[Cell]:
        return [grid.move(cell, d) for d in grid.NEIGHBOURS if self.is_open(cell, d)]

    def distances(self, source: Cell) -> dict[Cell, int]:
        """BFS distance from ``source`` to every reachable cell."""
        seen = {source: 0}
        queue = deque([source])
        while queue:
            cell = queue.popleft()
            for nxt in self.neighbours(cell):
                if nxt not in seen:
                    seen[nxt] = seen[cell] + 1
                    queue.append(nxt)
        return seen

    def shortest_path(self, start: Cell, goal: Cell) -> list[Cell]:
        """Cells from start to goal inclusive; raises InvalidLayout if the goal is unreachable."""
        parent = {start: None}
        queue = deque([start])
        while queue:
            cell = queue.popleft()
            if cell == goal:
                break
            for nxt in self.neighbours(cell):
                if nxt not in parent:
                    parent[nxt] = cell
                    queue.append(nxt)
        if goal not in parent:
            raise InvalidLayout(f"cell {goal} is unreachable from {start}")
        path = [goal]
        while parent[path[-1]] is not None:
            path.append(parent[path[-1]])
        return path[::-1]

    def is_perfect(self) -> bool:
        """Connected with no loops (a spanning tree: n*n - 1 passages)."""
        passages = sum(map(sum, self.open_right)) + sum(map(sum, self.open_down))
        return passages == self.size**2 - 1 and len(self.distances((0, 0))) == self.size**2

    def to_json(self) -> dict:
        return {"size": self.size, "open_right": [list(r) for r in self.open_right], "open_down": [list(r) for r in self.open_down]}

    @classmethod
    def from_json(cls, record: dict) -> "MazeLayout":
        return cls(
            record["size"],
            tuple(tuple(bool(v) for v in row) for row in record["open_right"]),
            tuple(tuple(bool(v) for v in row) for row in record["open_down"]),
        )


@dataclass(frozen=True)
class MazeState:
    layout: MazeLayout
    agent: Cell
    visited: frozenset = field(default_factory=frozenset)  # cells walked on, agent included
    marks: tuple[tuple[str, Cell], ...] = ()  # sorted (label, cell)

    def mark_at(self, cell: Cell) -> str | None:
        return next((label for label, at in self.marks if at == cell), None)


# --- building layouts ---------------------------------------------------------------------------
def random_maze(rng: np.random.Generator, size: int) -> MazeLayout:
    """A perfect maze by randomized depth-first search from a random cell (maze-dataset's default
    generator, ``gen_dfs``), all randomness from ``rng``."""
    right = np.zeros((size, max(size - 1, 0)), dtype=bool)
    down = np.zeros((max(size - 1, 0), size), dtype=bool)
    start = (int(rng.integers(size)), int(rng.integers(size)))
    seen = {start}
    stack = [start]
    while stack:
        cell = stack[-1]
        options = [
            (d, grid.move(cell, d))
            for d in grid.NEIGHBOURS
            if 0 <= grid.move(cell, d)[0] < size and 0 <= grid.move(cell, d)[1] < size and grid.move(cell, d) not in seen
        ]
        if not options:
            stack.pop()
            continue
        direction, nxt = options[int(rng.integers(len(options)))]
        (r, c), (r2, c2) = cell, nxt
        if direction in ("left", "right"):
            right[r, min(c, c2)] = True
        else:
            down[min(r, r2), c] = True
        seen.add(nxt)
        stack.append(nxt)
    return MazeLayout(size, tuple(map(tuple, right.tolist())), tuple(map(tuple, down.tolist())))


def maze_from_ascii(text: str) -> MazeLayout:
    """Layout from maze-dataset's ASCII convention: a (2n+1) x (2n+1) grid, ``#`` wall, space open
    (``S``, ``E``, ``X`` and ``.`` also count as open); cells sit at odd rows and columns."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise InvalidLayout("ASCII maze is empty")
    width = len(lines[0])
    if any(len(line) != width for line in lines) or len(lines) != width:
        raise InvalidLayout(f"ASCII maze must be square; got {len(lines)} rows of widths {sorted({len(l) for l in lines})}")
    if width % 2 == 0 or width < 3:
        raise InvalidLayout(f"ASCII maze side must be odd (2n+1), got {width}")
    bad = {ch for line in lines for ch in line} - set("# SEX.")
    if bad:
        raise InvalidLayout(f"ASCII maze has unknown characters {sorted(bad)}; use '#' for walls and ' ' for open")
    n = (width - 1) // 2
    is_open = [[ch != "#" for ch in line] for line in lines]
    for r in range(n):
        for c in range(n):
            if not is_open[2 * r + 1][2 * c + 1]:
                raise InvalidLayout(f"ASCII maze cell ({r}, {c}) is a wall; cells must sit at odd positions")
    right = tuple(tuple(is_open[2 * r + 1][2 * c + 2] for c in range(n - 1)) for r in range(n))
    down = tuple(tuple(is_open[2 * r + 2][2 * c + 1] for c in range(n)) for r in range(n - 1))
    return MazeLayout(n, right, down)


def maze_to_ascii(layout: MazeLayout) -> str:
    n = layout.size
    rows = [["#"] * (2 * n + 1) for _ in range(2 * n + 1)]
    for r in range(n):
        for c in range(n):
            rows[2 * r + 1][2 * c + 1] = " "
            if c < n - 1 and layout.open_right[r][c]:
                rows[2 * r + 1][2 * c + 2] = " "
            if r < n - 1 and layout.open_down[r][c]:
                rows[2 * r + 2][2 * c + 1] = " "
    return "\n".join("".join(row) for row in rows)


def maze_from_connection_list(connections) -> MazeLayout:
    """Layout from maze-dataset's ``connection_list`` (bool array (2, n, n): [0] open below,
    [1] open to the right) or from a maze-dataset ``LatticeMaze`` object."""
    connections = np.asarray(getattr(connections, "connection_list", connections), dtype=bool)
    if connections.ndim != 3 or connections.shape[0] != 2 or connections.shape[1] != connections.shape[2]:
        raise InvalidLayout(f"connection list must have shape (2, n, n), got {connections.shape}")
    n = connections.shape[1]
    if connections[0, n - 1].any() or connections[1, :, n - 1].any():
        raise InvalidLayout("connection list opens a passage through the outer wall")
    down = tuple(tuple(bool(v) for v in connections[0, r]) for r in range(n - 1))
    right = tuple(tuple(bool(v) for v in connections[1, r, : n - 1]) for r in range(n))
    return MazeLayout(n, right, down)


def maze_to_connection_list(layout: MazeLayout) -> np.ndarray:
    """maze-dataset's ``connection_list`` (bool (2, n, n): [0] open below, [1] open right)."""
    n = layout.size
    connections = np.zeros((2, n, n), dtype=bool)
    connections[0, : n - 1] = np.asarray(layout.open_down, dtype=bool).reshape(n - 1, n)
    connections[1, :, : n - 1] = np.asarray(layout.open_right, dtype=bool).reshape(n, n - 1)
    return connections


def maze_from_mvot_info(maze_info: Sequence | str, size: int | None = None) -> MazeLayout:
    """Layout from an MVoT maze record's ``maze_info``: n*n "open below" flags then n*n "open
    right" flags, row-major, as T/F letters or booleans."""
    if isinstance(maze_info, str):
        stray = sorted(set(maze_info) - set("TF, []'\"\n"))
        if stray:
            raise InvalidLayout(f"maze_info must be T/F flags, found {''.join(stray[:5])!r}")
        flags = [ch == "T" for ch in maze_info if ch in "TF"]
    else:
        known = {"T": True, "F": False, "True": True, "False": False, "true": True, "false": False}
        flags = []
        for v in maze_info:
            if isinstance(v, (bool, np.bool_)) or (isinstance(v, (int, np.integer)) and v in (0, 1)):
                flags.append(bool(v))
            elif isinstance(v, str) and v in known:
                flags.append(known[v])
            else:
                raise InvalidLayout(f"maze_info must be T/F flags or booleans, found {v!r}")
    n = size or int(round((len(flags) / 2) ** 0.5))
    if n < 1 or 2 * n * n != len(flags):
        raise InvalidLayout(f"maze_info has {len(flags)} flags; expected 2*n*n for a maze of side n >= 1")
    return maze_from_connection_list(np.array(flags, dtype=bool).reshape(2, n, n))


# --- the world: render, read, step ---------------------------------------------------------------
class MazeWorld(Task):
    actions = ("up", "down", "left", "right")
    min_size, max_size = 2, 16
    in_distribution, out_of_distribution = (3, 4, 5, 6), (7, 8)
    cell_px = CELL_PX
    kinds, palette = KINDS, PALETTE  # (mark, trail) cell kinds and their fill colours (a variant may add marks)

    def render(self, state: MazeState) -> Image.Image:
        n, px = state.layout.size, CELL_PX
        kinds = np.zeros((n, n), dtype=np.int64)
        for r in range(n):
            for c in range(n):
                trail = "agent" if (r, c) == state.agent else "visited" if (r, c) in state.visited else "none"
                kinds[r, c] = self.kinds.index((state.mark_at((r, c)), trail))
        image = grid.paint_cells(kinds, self.palette, px)  # (8n, 8n, 3)
        for r in range(n):
            for c in range(n):
                if c < n - 1:  # vertical border between (r, c) and (r, c+1)
                    x = px * (c + 1)
                    image[px * r : px * (r + 1), x - 1 : x + 1] = 1.0 if state.layout.open_right[r][c] else 0.0
                if r < n - 1:  # horizontal border between (r, c) and (r+1, c)
                    y = px * (r + 1)
                    image[y - 1 : y + 1, px * c : px * (c + 1)] = 1.0 if state.layout.open_down[r][c] else 0.0
        for k in range(n + 1):  # posts at every corner and the outer wall
            image[max(px * k - 1, 0) : px * k + 1, ::px] = 0.0
            image[max(px * k - 1, 0) : px * k + 1, px - 1 :: px] = 0.0
        image[[0, -1], :] = 0.0
        image[:, [0, -1]] = 0.0
        return grid.to_image(image)

    def read(self, image: Image.Image) -> MazeState:
        n = grid.grid_size_from_image(image, CELL_PX)
        array = grid.to_array(image)  # (8n, 8n, 3)
        means = grid.cell_means(array, n, n, CELL_PX, margin=2)  # (n, n, 3)
        kinds = grid.nearest_kind(means, self.palette)  # (n, n)
        fills = means.mean(-1)  # (n, n) brightness
        px = CELL_PX
        if n > 1:
            lines = np.stack([px * k + offset for k in range(1, n) for offset in (-1, 0)])  # (2(n-1),) border pixels
            middle = (np.arange(n)[:, None] * px + np.arange(2, px - 2)).reshape(-1)  # (4n,) central rows of each cell
            vertical = array[middle][:, lines].reshape(n, px - 4, n - 1, 2, 3).mean(axis=(1, 3, 4))  # (n, n-1)
            horizontal = array[lines][:, middle].reshape(n - 1, 2, n, px - 4, 3).mean(axis=(1, 3, 4))  # (n-1, n)
            right = _is_open(vertical, (fills[:, :-1] + fills[:, 1:]) / 2).tolist()
            down = _is_open(horizontal, (fills[:-1] + fills[1:]) / 2).tolist()
        else:
            right, down = [[]], []
        layout = MazeLayout(n, tuple(tuple(map(bool, row)) for row in right), tuple(tuple(map(bool, row)) for row in down))
        agents, visited, marks = [], set(), []
        for r in range(n):
            for c in range(n):
                mark, trail = self.kinds[kinds[r, c]]
                if trail != "none":
                    visited.add((r, c))
                if trail == "agent":
                    agents.append((r, c))
                if mark is not None:
                    marks.append((mark, (r, c)))
        if len(agents) != 1:
            raise ValueError(f"expected exactly one agent cell in the maze image, found {len(agents)}")
        return MazeState(layout, agents[0], frozenset(visited), tuple(sorted(marks)))

    def is_valid(self, state: MazeState, action: str) -> bool:
        return action in self.actions and state.layout.is_open(state.agent, action)

    def step(self, state: MazeState, action: str) -> MazeState:
        """Move one cell; bumping a wall leaves the agent in place (``is_valid`` flags it)."""
        if action not in self.actions:
            raise ValueError(f"unknown maze action {action!r}; expected one of {self.actions}")
        if not state.layout.is_open(state.agent, action):
            return state
        agent = grid.move(state.agent, action)
        return MazeState(state.layout, agent, state.visited | {agent}, state.marks)

    def marked_cells(self, state: MazeState) -> frozenset:
        return frozenset(state.visited | {state.agent})

    def describe(self, state: MazeState) -> str:
        return f"Now at row {state.agent[0]}, column {state.agent[1]}."

    def state_to_json(self, state: MazeState) -> dict:
        return {
            "layout": state.layout.to_json(),
            "agent": list(state.agent),
            "visited": sorted(map(list, state.visited)),
            "marks": [[label, list(cell)] for label, cell in state.marks],
        }

    def state_from_json(self, record: dict) -> MazeState:
        return MazeState(
            MazeLayout.from_json(record["layout"]),
            tuple(record["agent"]),
            frozenset(tuple(c) for c in record["visited"]),
            tuple((label, tuple(cell)) for label, cell in record["marks"]),
        )

    def _start_state(self, layout: MazeLayout, start: Cell, marks: dict[str, Cell],
                     start_may_be_marked: bool = False) -> MazeState:
        n = layout.size
        for label, cell in [("start", start), *marks.items()]:
            if not (0 <= cell[0] < n and 0 <= cell[1] < n):
                raise InvalidLayout(f"{label} cell {cell} is outside the {n}x{n} maze")
        if start in marks.values() and not start_may_be_marked:
            raise InvalidLayout(f"the start {start} cannot also be a marked cell")
        if len(set(marks.values())) != len(marks):
            raise InvalidLayout("two marks share a cell")
        return MazeState(layout, tuple(start), frozenset({tuple(start)}), tuple(sorted(marks.items())))


@lru_cache(maxsize=4096)
def _distances_to(layout: MazeLayout, goal: Cell) -> dict[Cell, int]:
    return layout.distances(goal)


def _is_open(border, neighbour_fill):
    """A border is open (white) or a wall (black). Blur mixes in about a third of the neighbouring
    fills, so compare against the midpoint of the two expectations."""
    return border > 0.35 * neighbour_fill + 0.325


def _path_actions(path: list[Cell]) -> list[str]:
    return [grid.direction_between(a, b) for a, b in zip(path, path[1:])]


class MazeMCQ(MCQFormat, MazeWorld):
    id = "maze-mcq-v0"
    description = f"MVoT MAZE: follow a stated action sequence from the {AGENT_NAME} start; which candidate A-D is the destination?"
    default_options = {k: f"{MARK_NAMES[k]} cell" for k in "ABCD"}
    min_size = 3  # a start and four candidates need five cells

    def generate(self, rng: np.random.Generator, size: int) -> Problem:
        """Random perfect maze; four candidate cells chosen first, the gold one uniformly among them,
        and the action sequence is the shortest path to it (so no heuristic that ignores the
        actions beats chance)."""
        self.check_size(size)
        layout = random_maze(rng, size)
        cells = [(r, c) for r in range(size) for c in range(size)]
        chosen = rng.choice(len(cells), size=5, replace=False)
        start, candidates = cells[chosen[0]], [cells[i] for i in chosen[1:]]
        gold = "ABCD"[int(rng.integers(4))]
        return self.from_layout(layout, start, dict(zip("ABCD", candidates)), target=gold)

    def from_layout(self, layout: MazeLayout, start: Cell, candidates: dict[str, Cell], *, target: str | None = None,
                    actions: Sequence[str] | None = None, meta: dict | None = None) -> Problem:
        """A problem on an external layout. Give either ``target`` (the gold letter; the actions are
        the shortest path to it) or ``actions`` (a wall-free sequence that must end on a candidate)."""
        if sorted(candidates) != list("ABCD"):
            raise InvalidLayout(f"candidates must be labelled A-D, got {sorted(candidates)}")
        # a candidate may sit on the start (MVoT's format allows it): a sequence that returns there
        state = self._start_state(layout, tuple(start), {k: tuple(v) for k, v in candidates.items()}, start_may_be_marked=True)
        if (target is None) == (actions is None):
            raise ValueError("give exactly one of target= or actions=")
        if target is not None and target not in candidates:
            raise InvalidLayout(f"target must be one of the candidate letters A-D, got {target!r}")
        if actions is None:
            actions = _path_actions(layout.shortest_path(state.agent, tuple(candidates[target])))
        actions = list(actions)
        end = state
        for i, action in enumerate(actions):
            if not self.is_valid(end, action):
                raise InvalidLayout(f"action {i} ({action!r}) walks into a wall at {end.agent}")
            end = self.step(end, action)
        answer = self.answer_for(end)
        if answer not in tuple("ABCD"):
            raise InvalidLayout(f"the action sequence ends at {end.agent}, which is not a candidate cell")
        prompt = self.prompt(layout.size, actions)
        return Problem(
            id="", task=self.id, prompt=prompt, state=self.state_to_json(state), answer=answer,
            options=dict(self.default_options), actions=actions,
            meta={"size": layout.size, "path_length": len(actions), **(meta or {})},
        )

    def answer_for(self, state: MazeState) -> str | None:
        """The candidate the agent stands on, if any."""
        return state.mark_at(state.agent)

    def prompt(self, size: int, actions: Sequence[str]) -> str:
        legend = ", ".join(f"{k} is the {MARK_NAMES[k]} cell" for k in "ABCD")
        return (
            f"The image shows a {size}x{size} maze. Black lines are walls; the {AGENT_NAME} cell is the start. "
            f"Four candidate cells are marked: {legend}.\n"
            f"Full Action Sequence: {plan_text(actions)}\n"
            f"Question: starting from the {AGENT_NAME} cell and following the full action sequence, which candidate is "
            "the final destination (A, B, C or D)? Answer with \"The answer is X.\""
        )


class MazeNav(NavFormat, MazeWorld):
    id = "maze-nav-v0"
    description = f"Maze route planning (VPRL / VoT): give the moves from the {AGENT_NAME} start to the {MARK_NAMES['G']} goal."

    def generate(self, rng: np.random.Generator, size: int) -> Problem:
        self.check_size(size)
        layout = random_maze(rng, size)
        cells = [(r, c) for r in range(size) for c in range(size)]
        a, b = rng.choice(len(cells), size=2, replace=False)
        return self.from_layout(layout, cells[a], cells[b])

    def from_layout(self, layout: MazeLayout, start: Cell, goal: Cell, meta: dict | None = None) -> Problem:
        """A planning problem on an external layout; raises InvalidLayout if the goal is unreachable."""
        state = self._start_state(layout, tuple(start), {"G": tuple(goal)})
        plan = _path_actions(layout.shortest_path(tuple(start), tuple(goal)))
        prompt = (
            f"The image shows a {layout.size}x{layout.size} maze. Black lines are walls; the {AGENT_NAME} cell is the start "
            f"and the {MARK_NAMES['G']} cell is the goal.\nQuestion: give the shortest sequence of moves from the start to the "
            "goal, one cell per move (Go up / Go down / Go left / Go right). Answer with \"The answer is: Go ... .\""
        )
        return Problem(
            id="", task=self.id, prompt=prompt, state=self.state_to_json(state), answer=plan_text(plan),
            meta={"size": layout.size, "path_length": len(plan), **(meta or {})},
        )

    def goal(self, problem: Problem) -> Cell:
        return dict(self.initial_state(problem).marks)["G"]

    def goal_distance(self, problem: Problem, state: MazeState) -> int | None:
        return _distances_to(state.layout, self.goal(problem)).get(state.agent)

    def is_goal(self, problem: Problem, state: MazeState) -> bool:
        return state.agent == self.goal(problem)
