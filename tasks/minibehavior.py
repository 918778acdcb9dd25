"""MiniBehavior "InstallingAPrinter": MVoT's MINIBEHAVIOR multiple choice (`minibehavior-mcq-v0`) and
planning (`minibehavior-nav-v0`), rebuilt without mini_behavior (not on PyPI, old gym).

World rules. A room of side ``size`` (5-12, the 1-cell border wall included; MVoT / VPRL use 7 and 8)
holds a table (a filled rectangle of interior cells; generated ones are 1x2 to 2x3, either way
round), a printer on a floor cell and the agent on a floor cell. Cells are (row, column), 0-based,
counting the wall. The MCQ action sequences never bump into anything, but may hold invalid pick ups
and drops (its failure cases).

* ``up`` / ``down`` / ``left`` / ``right`` move one cell; moving into the wall, the table or the
  printer lying on the floor leaves the agent in place (an invalid action).
* ``pick up`` is valid iff the agent carries nothing and the printer is 4-adjacent (on the floor
  or on the table); the agent then carries it.
* ``drop`` is valid iff the agent carries the printer and a table cell is 4-adjacent; the printer
  goes onto the first adjacent table cell in the order up, down, left, right: it is *installed*.
  There is no dropping on the floor.
* Invalid actions change nothing. Nothing ends the episode: later actions still move the agent (or
  pick the printer up again); a sequence is judged by its final state (installed or not).

Each 8-px cell is one flat colour of the {0, .5, 1}^3 lattice: wall grey, floor white, table brown,
printer blue, installed printer green, agent red, agent carrying the printer magenta.
"""
from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
from PIL import Image

from tasks import grid
from tasks.core import InvalidLayout, Problem, Task
from tasks.formats import MCQFormat, NavFormat
from tasks.parsing import parse_actions, plan_text

Cell = tuple[int, int]
ACTIONS = ("up", "down", "left", "right", "pick up", "drop")
KINDS = ("wall", "floor", "table", "printer", "installed", "agent", "carrying")
PALETTE = [(0.5, 0.5, 0.5), (1, 1, 1), (0.5, 0, 0), (0, 0, 1), (0, 1, 0), (1, 0, 0), (1, 0, 1)]
TABLE_SHAPES = ((1, 2), (2, 1), (1, 3), (3, 1), (2, 2), (2, 3), (3, 2))  # (rows, columns)
OPTIONS = {"A": "Success", "B": "Failure"}
CELL_PX = 8
MIN_SIZE, MAX_SIZE = 5, 12


@dataclass(frozen=True)
class RoomState:
    size: int  # side in cells, border wall included
    table: tuple[Cell, ...]  # sorted
    agent: Cell
    printer: Cell | None  # None while carried; a table cell once installed

    def __post_init__(self):
        object.__setattr__(self, "table", tuple(sorted(tuple(c) for c in self.table)))
        object.__setattr__(self, "agent", tuple(self.agent))
        if self.printer is not None:
            object.__setattr__(self, "printer", tuple(self.printer))

    @property
    def carrying(self) -> bool:
        return self.printer is None

    @property
    def installed(self) -> bool:
        return self.printer in self.table


# --- dynamics on compact (agent, printer) pairs --------------------------------------------------
def _inside(size: int, cell: Cell) -> bool:
    return 0 < cell[0] < size - 1 and 0 < cell[1] < size - 1


def _adjacent(a: Cell, b: Cell) -> bool:
    return abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1


def _transition(size: int, table: frozenset, agent: Cell, printer: Cell | None, action: str) -> tuple[Cell, Cell | None]:
    """The world rules (module docstring); an action is valid iff it changes the pair."""
    if action in grid.NEIGHBOURS:
        target = grid.move(agent, action)
        if _inside(size, target) and target not in table and target != printer:
            return target, printer
    elif action == "pick up":
        if printer is not None and _adjacent(agent, printer):
            return agent, None
    elif action == "drop":
        if printer is None:
            for direction in grid.NEIGHBOURS:  # up, down, left, right
                cell = grid.move(agent, direction)
                if cell in table:
                    return agent, cell
    else:
        raise ValueError(f"unknown MiniBehavior action {action!r}; expected one of {ACTIONS}")
    return agent, printer


def _floor_distances(size: int, table: frozenset, sources, printer: Cell | None = None) -> dict[Cell, int]:
    """BFS over floor cells (not the wall, the table or the printer lying at ``printer``)."""
    distance = {s: 0 for s in sources}
    queue = deque(distance)
    while queue:
        cell = queue.popleft()
        for direction in grid.NEIGHBOURS:
            nxt = grid.move(cell, direction)
            if nxt not in distance and _inside(size, nxt) and nxt not in table and nxt != printer:
                distance[nxt] = distance[cell] + 1
                queue.append(nxt)
    return distance


@lru_cache(maxsize=1024)
def _to_table(size: int, table: tuple[Cell, ...]) -> dict[Cell, int]:
    """Moves from each floor cell to the nearest cell next to the table (the printer carried)."""
    tset = frozenset(table)
    sources = [c for c in _neighbours(table) if _inside(size, c) and c not in tset]
    return _floor_distances(size, tset, sources)


@lru_cache(maxsize=65536)
def _plan_distance(size: int, table: tuple[Cell, ...], agent: Cell, printer: Cell | None) -> int | None:
    """Fewest actions from the (agent, printer) pair to an installed pair. Every installing plan is
    moves, pick up, moves, drop (invalid actions are no-ops and an installed printer is the goal),
    so this is a BFS over agent cells with the printer on the floor, then one with it carried."""
    if printer in table:
        return 0
    to_table = _to_table(size, table)
    if printer is None:
        return None if agent not in to_table else to_table[agent] + 1
    walk = _floor_distances(size, frozenset(table), [agent], printer)
    costs = [walk[q] + 1 + to_table[q] + 1 for q in _neighbours([printer]) if q in walk and q in to_table]
    return min(costs) if costs else None


def plan_distance(state: RoomState) -> int | None:
    """Fewest actions that install the printer from ``state``; ``None`` if impossible."""
    return _plan_distance(state.size, state.table, state.agent, state.printer)


def shortest_plan(state: RoomState, rng: np.random.Generator | None = None) -> list[str] | None:
    """A shortest installing plan (first action in ``ACTIONS`` order among ties, or a random one)."""
    size, table, tset = state.size, state.table, frozenset(state.table)
    pair = (state.agent, state.printer)
    distance = _plan_distance(size, table, *pair)
    if distance is None:
        return None
    plan = []
    while distance:
        successors = [(a, _transition(size, tset, *pair, a)) for a in ACTIONS]
        options = [(a, n) for a, n in successors if _plan_distance(size, table, *n) == distance - 1]
        action, pair = options[0] if rng is None else options[int(rng.integers(len(options)))]
        plan.append(action)
        distance -= 1
    return plan


def _neighbours(cells) -> set[Cell]:
    return {grid.move(c, d) for c in cells for d in grid.NEIGHBOURS}


# --- layouts ------------------------------------------------------------------------------------
def layout_of(state: RoomState) -> dict:
    """The JSON layout of a room state: {"size", "table", "printer", "agent"} (printer on the floor)."""
    table = [list(c) for c in state.table]
    return {"size": state.size, "table": table, "printer": list(state.printer), "agent": list(state.agent)}


def room_from_layout(layout: dict) -> RoomState:
    """Check a JSON layout {"size": 7, "table": [[r, c], ...], "printer": [r, c], "agent": [r, c]}
    and return its start state; raise InvalidLayout naming what is wrong."""
    if not isinstance(layout, dict):
        raise InvalidLayout(f"a MiniBehavior layout is a dict with size, table, printer, agent; got {type(layout).__name__}")
    missing = [key for key in ("size", "table", "printer", "agent") if key not in layout]
    if missing:
        raise InvalidLayout(f"MiniBehavior layout is missing {missing}")
    size = layout["size"]
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not MIN_SIZE <= size <= MAX_SIZE:
        raise InvalidLayout(f"room size must be an integer in [{MIN_SIZE}, {MAX_SIZE}] (side with the border wall), got {size!r}")
    size = int(size)

    def cell(name: str, value) -> Cell:
        if not (isinstance(value, (list, tuple)) and len(value) == 2
                and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)):
            raise InvalidLayout(f"{name} must be a [row, column] pair of integers, got {value!r}")
        at = (int(value[0]), int(value[1]))
        if not _inside(size, at):
            raise InvalidLayout(
                f"{name} {at} is on the wall or outside the {size}x{size} room (interior rows and columns are 1..{size - 2})"
            )
        return at

    if not isinstance(layout["table"], (list, tuple)) or not layout["table"]:
        raise InvalidLayout(f"table must be a non-empty list of [row, column] cells, got {layout['table']!r}")
    table = [cell("table cell", c) for c in layout["table"]]
    if len(set(table)) != len(table):
        raise InvalidLayout(f"table lists a cell twice: {sorted(table)}")
    rows, cols = [r for r, _ in table], [c for _, c in table]
    if (max(rows) - min(rows) + 1) * (max(cols) - min(cols) + 1) != len(table):
        raise InvalidLayout(f"table cells {sorted(table)} are not a filled rectangle")
    printer, agent = cell("printer", layout["printer"]), cell("agent", layout["agent"])
    if printer in table:
        raise InvalidLayout(f"printer {printer} overlaps the table; it must start on the floor")
    if agent in table:
        raise InvalidLayout(f"agent {agent} overlaps the table")
    if agent == printer:
        raise InvalidLayout(f"agent and printer overlap at {agent}")
    state = RoomState(size, tuple(table), agent, printer)
    if plan_distance(state) is None:
        raise InvalidLayout(
            f"no plan installs the printer in this room: the agent at {agent} cannot reach the printer at {printer} "
            "and then carry it next to the table"
        )
    return state


def random_room(rng: np.random.Generator, size: int) -> RoomState:
    """A random solvable room: table shape and place, then printer and agent on distinct floor cells."""
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"room size must be an integer in [{MIN_SIZE}, {MAX_SIZE}], got {size!r}")
    inner = size - 2
    shapes = [(h, w) for h, w in TABLE_SHAPES if h <= inner and w <= inner]
    while True:
        h, w = shapes[int(rng.integers(len(shapes)))]
        r0, c0 = 1 + int(rng.integers(inner - h + 1)), 1 + int(rng.integers(inner - w + 1))
        table = tuple((r, c) for r in range(r0, r0 + h) for c in range(c0, c0 + w))
        floor = [(r, c) for r in range(1, size - 1) for c in range(1, size - 1) if (r, c) not in table]
        i, j = rng.choice(len(floor), size=2, replace=False)
        state = RoomState(size, table, floor[j], floor[i])
        if plan_distance(state) is not None:
            return state


# --- the world: render, read, step ---------------------------------------------------------------
class RoomWorld(Task):
    actions = ACTIONS
    min_size, max_size = MIN_SIZE, MAX_SIZE
    in_distribution, out_of_distribution = (7, 8), (9, 10)
    cell_px = CELL_PX

    def render(self, state: RoomState) -> Image.Image:
        n = state.size
        kinds = np.full((n, n), KINDS.index("floor"), dtype=np.int64)
        kinds[[0, -1], :] = kinds[:, [0, -1]] = KINDS.index("wall")
        for cell in state.table:
            kinds[cell] = KINDS.index("table")
        if state.printer is not None:
            kinds[state.printer] = KINDS.index("installed" if state.installed else "printer")
        kinds[state.agent] = KINDS.index("carrying" if state.carrying else "agent")
        return grid.to_image(grid.paint_cells(kinds, PALETTE, CELL_PX))  # (8n, 8n, 3)

    def read(self, image: Image.Image) -> RoomState:
        n = grid.grid_size_from_image(image, CELL_PX)
        if not MIN_SIZE <= n <= MAX_SIZE:
            raise ValueError(f"a MiniBehavior room image is {MIN_SIZE}-{MAX_SIZE} cells of {CELL_PX} px a side, got {n} cells")
        means = grid.cell_means(grid.to_array(image), n, n, CELL_PX, margin=2)  # (n, n, 3)
        kinds = np.array(KINDS)[grid.nearest_kind(means, PALETTE)]  # (n, n) names
        border = np.zeros((n, n), dtype=bool)
        border[[0, -1], :] = border[:, [0, -1]] = True
        if (kinds[border] != "wall").any() or (kinds[~border] == "wall").any():
            raise ValueError("not a MiniBehavior room: the wall must be exactly the 1-cell border")
        cells = lambda *names: [(r, c) for r in range(n) for c in range(n) if kinds[r, c] in names]  # noqa: E731
        agents, printers = cells("agent", "carrying"), cells("printer", "installed")
        if len(agents) != 1:
            raise ValueError(f"expected exactly one agent (red or magenta cell) in the room image, found {len(agents)}")
        carrying = kinds[agents[0]] == "carrying"
        if len(printers) != (0 if carrying else 1):
            expected = "no printer drawn (the agent carries it)" if carrying else "one printer"
            raise ValueError(f"expected {expected} in the room image, found {len(printers)}")
        return RoomState(n, tuple(cells("table", "installed")), agents[0], None if carrying else printers[0])

    def is_valid(self, state: RoomState, action: str) -> bool:
        if action not in ACTIONS:
            return False
        return _transition(state.size, frozenset(state.table), state.agent, state.printer, action) != (state.agent, state.printer)

    def step(self, state: RoomState, action: str) -> RoomState:
        """One action under the world rules; an invalid one returns ``state`` unchanged."""
        agent, printer = _transition(state.size, frozenset(state.table), state.agent, state.printer, action)
        if (agent, printer) == (state.agent, state.printer):
            return state
        return RoomState(state.size, state.table, agent, printer)

    def marked_cells(self, state: RoomState) -> frozenset:
        return frozenset({state.agent} | ({state.printer} if state.printer is not None else set()))

    def describe(self, state: RoomState) -> str:
        text = f"Now at row {state.agent[0]}, column {state.agent[1]}. Carrying: {'printer' if state.carrying else 'None'}."
        return text + (" The printer is on the table." if state.installed else "")

    def state_to_json(self, state: RoomState) -> dict:
        return {
            "layout": {"size": state.size, "table": [list(c) for c in state.table]},
            "agent": list(state.agent),
            "printer": None if state.printer is None else list(state.printer),
        }

    def state_from_json(self, record: dict) -> RoomState:
        layout = record["layout"]
        printer = record["printer"]
        return RoomState(layout["size"], tuple(tuple(c) for c in layout["table"]), tuple(record["agent"]),
                         None if printer is None else tuple(printer))

    def layout_key(self, problem: Problem) -> str:
        """The room (size and table) plus the printer's and the agent's start cells."""
        return json.dumps(problem.state, sort_keys=True)

    def room_prompt(self, size: int) -> str:
        return (
            f"The image shows a {size}x{size} room seen from above; grey cells are walls. The red cell is the agent, "
            "the blue cell is the printer and the brown cells are the table (magenta: the agent carrying the printer; "
            "green: the printer on the table). The agent moves one cell per action (Go up / Go down / Go left / "
            "Go right), cannot walk through the table or the printer, can pick up the printer from a neighbouring "
            "cell (Pick up) and can drop it onto a neighbouring table cell (Drop)."
        )


# --- action sequences for the multiple-choice format ---------------------------------------------
# Each variant is a script: an action is done as is (invalid ones change nothing), "wander" makes 1-3
# random moves, any other word walks by a random shortest route to a cell of that kind ("printer" /
# "table": next to it, "away-printer" / "away-table": reachable but not next to it, "anywhere": a
# random reachable cell). Successes and failures both mostly pick up and drop, so the action text
# alone does not give the answer away.
SUCCESS_SCRIPTS = {
    "shortest": None,  # a random shortest plan
    "detour": ("printer", "pick up", "anywhere", "table", "drop"),
    "retry": ("printer", "pick up", "away-table", "drop", "table", "drop"),
    "then-move": ("printer", "pick up", "table", "drop", "wander"),
}
FAILURE_SCRIPTS = {
    "drop-away": ("printer", "pick up", "away-table", "drop"),
    "pick-up-away": ("away-printer", "pick up", "table", "drop"),
    "no-drop": ("printer", "pick up", "table"),
    "pick-up-again": ("printer", "pick up", "table", "drop", "pick up"),
    "no-pick-up": ("anywhere", "table", "drop"),
}


def _reach(state: RoomState) -> set[Cell]:
    """Cells the agent can walk to (its own included)."""
    return set(_floor_distances(state.size, frozenset(state.table), [state.agent], state.printer))


def _targets(state: RoomState, where: str, rng: np.random.Generator) -> set[Cell]:
    reach = _reach(state)
    if where == "anywhere":
        cells = sorted(reach)
        return {cells[int(rng.integers(len(cells)))]}
    thing = state.table if where.endswith("table") else [state.printer]
    return reach - _neighbours(thing) if where.startswith("away") else reach & _neighbours(thing)


def _walk(state: RoomState, targets: set[Cell], rng: np.random.Generator) -> list[str] | None:
    """Moves from the agent to one of ``targets`` (the nearest, or half the time one drawn at
    random) by a random shortest route; ``None`` if there is no target."""
    targets = sorted(targets)
    if not targets:
        return None
    if rng.random() < 0.5:
        targets = [targets[int(rng.integers(len(targets)))]]
    distance = _floor_distances(state.size, frozenset(state.table), targets, state.printer)
    moves, cell = [], state.agent
    while distance[cell]:
        options = [d for d in grid.NEIGHBOURS if distance.get(grid.move(cell, d)) == distance[cell] - 1]
        moves.append(options[int(rng.integers(len(options)))])
        cell = grid.move(cell, moves[-1])
    return moves


def _wander(state: RoomState, rng: np.random.Generator, count: int) -> list[str]:
    """``count`` random valid moves (fewer if the agent is boxed in)."""
    tset = frozenset(state.table)
    moves, cell = [], state.agent
    for _ in range(count):
        options = [d for d in grid.NEIGHBOURS if _transition(state.size, tset, cell, state.printer, d)[0] != cell]
        if not options:
            break
        moves.append(options[int(rng.integers(len(options)))])
        cell = grid.move(cell, moves[-1])
    return moves


# --- the two formats -----------------------------------------------------------------------------
class MiniBehaviorMCQ(MCQFormat, RoomWorld):
    id = "minibehavior-mcq-v0"
    description = "MVoT MINIBEHAVIOR (InstallingAPrinter): does the stated action sequence install the printer on the table?"
    default_options = OPTIONS
    success_weights = {"shortest": 0.4, "detour": 0.3, "retry": 0.15, "then-move": 0.15}
    failure_weights = {"drop-away": 0.35, "pick-up-away": 0.2, "no-drop": 0.15, "pick-up-again": 0.15, "no-pick-up": 0.15}
    extra_probability = 0.25  # chance of a random walk before a script, and of 1-3 moves after it

    def generate(self, rng: np.random.Generator, size: int) -> Problem:
        """The class (Success / Failure) is drawn uniformly first, then a room and a sequence variant
        of that class (``SUCCESS_SCRIPTS`` / ``FAILURE_SCRIPTS``); so heuristics that ignore the
        actions score 50%."""
        self.check_size(size)
        success = bool(rng.integers(2))
        weights = self.success_weights if success else self.failure_weights
        names, p = list(weights), np.array(list(weights.values()))
        while True:
            state = random_room(rng, size)
            variant = names[int(rng.choice(len(names), p=p / p.sum()))]
            actions = self._sequence(state, variant, rng)
            if actions:
                problem = self.from_layout(layout_of(state), actions, meta={"variant": variant})
                if (problem.answer == "A") == success:
                    return problem

    scripts = {**SUCCESS_SCRIPTS, **FAILURE_SCRIPTS}

    def _sequence(self, state: RoomState, variant: str, rng: np.random.Generator) -> list[str] | None:
        """The actions of ``variant``'s script from ``state``; ``None`` if the room does not allow it."""
        script = self.scripts[variant]
        if script is None:
            return shortest_plan(state, rng)
        script = list(script)
        if rng.random() < self.extra_probability:
            script.insert(0, "anywhere")
        if rng.random() < self.extra_probability and script[-1] != "wander":
            script.append("wander")
        actions = []
        for step in script:
            part = self._script_part(state, step, rng)
            if part is None:
                return None
            state = ([state] + self.rollout(state, part))[-1]
            actions += part
        return actions

    def _script_part(self, state: RoomState, step: str, rng: np.random.Generator) -> list[str] | None:
        """The actions of one script step (see ``SUCCESS_SCRIPTS``); ``None`` if there is no target."""
        if step in ACTIONS:
            return [step]
        if step == "wander":
            return _wander(state, rng, 1 + int(rng.integers(3)))
        return _walk(state, _targets(state, step, rng), rng)

    def answer_for(self, state: RoomState) -> str:
        """A (Success) if the printer is installed, else B (Failure)."""
        return "A" if state.installed else "B"

    def from_layout(self, layout: dict, actions: Sequence[str] | str | None = None, meta: dict | None = None) -> Problem:
        """A problem from a JSON layout (see ``room_from_layout``) and an action sequence (a list of
        action names or "Go up. Pick up. ..." text; also read from ``layout["actions"]``). Any
        sequence is accepted (invalid actions change nothing); the answer is simulated."""
        state = room_from_layout(layout)
        actions = layout.get("actions") if actions is None else actions
        if actions is None:
            raise InvalidLayout("a MiniBehavior MCQ problem needs an action sequence (actions=...)")
        if isinstance(actions, str):
            actions = parse_actions(actions, ACTIONS) or []
        actions = list(actions)
        unknown = [a for a in actions if a not in ACTIONS]
        if unknown:
            raise InvalidLayout(f"unknown MiniBehavior actions {unknown}; expected {ACTIONS}")
        end = state
        for action in actions:
            end = self.step(end, action)
        prompt = (
            f"{self.room_prompt(state.size)}\n"
            f"Full Action Sequence: {plan_text(actions)}\n"
            "Question: after the agent follows the full action sequence, is the printer installed on the table? "
            "A. Success; B. Failure. Answer with \"The answer is X.\""
        )
        return Problem(
            id="", task=self.id, prompt=prompt, state=self.state_to_json(state), answer=self.answer_for(end),
            options=dict(OPTIONS), actions=actions,
            meta={"size": state.size, "path_length": len(actions), "plan_length": plan_distance(state), **(meta or {})},
        )


class MiniBehaviorNav(NavFormat, RoomWorld):
    id = "minibehavior-nav-v0"
    description = "MiniBehavior planning (VPRL): give the actions that install the printer on the table."

    def generate(self, rng: np.random.Generator, size: int) -> Problem:
        self.check_size(size)
        return self.from_layout(layout_of(random_room(rng, size)))

    def from_layout(self, layout: dict, meta: dict | None = None) -> Problem:
        """A planning problem from a JSON layout (see ``room_from_layout``); the gold answer is a
        shortest plan."""
        state = room_from_layout(layout)
        plan = shortest_plan(state)
        prompt = (
            f"{self.room_prompt(state.size)}\n"
            "Question: give the shortest sequence of actions that installs the printer on the table. Answer with "
            "\"The answer is: Go ... . Pick up. ... Drop.\""
        )
        return Problem(
            id="", task=self.id, prompt=prompt, state=self.state_to_json(state), answer=plan_text(plan),
            meta={"size": state.size, "path_length": len(plan), **(meta or {})},
        )

    def goal_distance(self, problem: Problem, state: RoomState) -> int | None:
        return plan_distance(state)

    def is_goal(self, problem: Problem, state: RoomState) -> bool:
        return state.installed
