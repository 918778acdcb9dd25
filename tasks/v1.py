"""The v1 multiple-choice tasks: action sequences as wide as the published formats.

The v0 generators state only direct routes (shortest paths to a target, a few scripted variants).
MVoT's released data also has revisits, wall bumps, backtracking, detours, returns to the start and
passes beside holes. The v1 tasks draw their stated sequences from a mix that covers those, up to
``4n`` actions, keeping each v0 guarantee: the answer class (or the gold letter among candidates
placed before any route is drawn) is uniform, so a heuristic that ignores the actions scores
chance. Worlds, rendering, reading, prompts and ``from_layout`` are v0's; only ``generate``
differs, and each problem records its sequence style in ``meta["style"]``.
"""
from __future__ import annotations

import numpy as np

from tasks import grid
from tasks.core import Problem
from tasks.frozenlake import FrozenLakeMCQ, _find, _path, _safe_distances
from tasks.maze import MazeMCQ, _path_actions, random_maze
from tasks.minibehavior import ACTIONS, FAILURE_SCRIPTS, SUCCESS_SCRIPTS, MiniBehaviorMCQ, _transition


def _choose(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names, p = list(weights), np.array(list(weights.values()), dtype=float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


# --- maze -----------------------------------------------------------------------------------------
class MazeMCQv1(MazeMCQ):
    """MAZE with walks that backtrack and revisit, detours and returns, up to ``4n`` moves; a
    candidate may sit on the start cell."""

    id = "maze-mcq-v1"
    styles = {"shortest": 0.35, "walk": 0.35, "detour": 0.3}  # and "return", when the gold candidate is the start
    start_marked_probability = 0.4  # a candidate on the start cell, the gold one with chance 1/4 like any

    def generate(self, rng: np.random.Generator, size: int) -> Problem:
        """Four candidate cells drawn first (sometimes one on the start), the gold one uniformly,
        then a wall-free route from the start that ends on it: a ``return`` when the gold
        candidate is the start, else a ``shortest`` path, a random ``walk`` or a ``detour``."""
        self.check_size(size)
        cells = [(r, c) for r in range(size) for c in range(size)]
        while True:
            layout = random_maze(rng, size)
            chosen = [cells[i] for i in rng.choice(len(cells), size=5, replace=False)]
            start, candidates = chosen[0], chosen[1:]
            gold = int(rng.integers(4))
            style = _choose(rng, self.styles)
            if rng.random() < self.start_marked_probability:
                slot = int(rng.integers(4))
                candidates[slot] = start
                style = "return" if slot == gold else style
            actions = self._route(rng, layout, start, candidates[gold], style, 4 * size)
            if actions:
                return self.from_layout(layout, start, dict(zip("ABCD", candidates)), actions=actions,
                                        meta={"style": style})

    @staticmethod
    def _route(rng, layout, start, goal, style: str, limit: int) -> list[str] | None:
        """Moves start -> goal: a random walk first (``walk``, ``return``: it backtracks at dead
        ends and revisits) or a random waypoint (``detour``), then the shortest path; ``None``
        when the route is empty or longer than ``limit``."""
        cell, path = start, [start]
        if style in ("walk", "return"):
            for _ in range(int(rng.integers(2, max(3, limit // 2)))):
                options = layout.neighbours(cell)
                cell = options[int(rng.integers(len(options)))]
                path.append(cell)
        elif style == "detour":
            n = layout.size
            waypoint = (int(rng.integers(n)), int(rng.integers(n)))
            path += layout.shortest_path(cell, waypoint)[1:]
            cell = waypoint
        path += layout.shortest_path(cell, goal)[1:]
        moves = _path_actions(path)
        return moves if 0 < len(moves) <= limit else None


# --- frozen lake ----------------------------------------------------------------------------------
class FrozenLakeMCQv1(FrozenLakeMCQ):
    """FROZENLAKE with random walks (revisits, bumps into the lake's edge), detours, returns to S
    and passes beside holes before the outcome's last leg, extra actions after the episode ends,
    up to ``4n`` actions."""

    id = "frozenlake-mcq-v1"
    styles = {"shortest": 0.25, "walk": 0.25, "detour": 0.15, "return": 0.15, "hole-edge": 0.2}
    extra_action_probability = 0.35

    def generate(self, rng: np.random.Generator, size: int) -> Problem:
        """The outcome class first (uniform), then a map and a sequence style that realise it."""
        self.check_size(size)
        outcome = "ABC"[int(rng.integers(3))]
        while True:
            rows = self.random_desc(rng, size)
            style = _choose(rng, self.styles)
            actions = self._wide_sequence(rng, rows, outcome, style)
            if actions is not None:
                problem = self.from_layout(rows, actions, meta={"style": style})
                if problem.answer == outcome:
                    return problem

    def _wide_sequence(self, rng, rows: tuple[str, ...], outcome: str, style: str) -> list[str] | None:
        n, start = len(rows), _find(rows, "S")
        if style == "shortest":
            actions = self._sequence(rng, rows, outcome)
            return actions if actions and len(actions) <= 4 * n else None
        safe = sorted(_safe_distances(rows, start))  # reachable without touching a hole or the goal
        cell, actions = start, []
        if style == "walk":
            cell, actions = self._walk(rng, rows, start, int(rng.integers(2, 2 * n + 1)))
        else:
            if style == "hole-edge":
                safe = [c for c in safe if any(_tile(rows, grid.move(c, d)) == "H" for d in grid.NEIGHBOURS)]
            if not safe:
                return None
            waypoint = safe[int(rng.integers(len(safe)))]
            actions = self._safe_route(rows, start, waypoint) if waypoint != start else []
            cell = waypoint
            if style == "return" and cell != start:
                actions += self._safe_route(rows, cell, start)
                cell = start
        last = self._last_leg(rng, rows, cell, outcome)
        if last is None:
            return None
        actions += last
        if outcome in "AB" and rng.random() < self.extra_action_probability:
            actions += [self.actions[int(rng.integers(4))] for _ in range(int(rng.integers(1, n + 1)))]
        return actions if 0 < len(actions) <= 4 * n else None

    def _walk(self, rng, rows, cell, length: int):
        """``length`` random actions that never enter a hole or the goal; a move off the lake is a
        bump (the agent stays)."""
        actions = []
        for _ in range(length):
            allowed = [a for a in self.actions if _tile(rows, grid.move(cell, a)) not in ("H", "G")]
            if not allowed:
                break
            action = allowed[int(rng.integers(len(allowed)))]
            actions.append(action)
            if _tile(rows, grid.move(cell, action)) is not None:
                cell = grid.move(cell, action)
        return cell, actions

    def _last_leg(self, rng, rows, cell, outcome: str) -> list[str] | None:
        """From a safe ``cell``: to the goal (A), into a hole (B) or nothing more (C); ``None``
        when no hole can be reached."""
        if outcome == "A":
            return _path(rows, cell, _find(rows, "G"))
        if outcome == "B":
            reach = _safe_distances(rows, cell)
            edges = sorted((c, d) for c in reach for d in grid.NEIGHBOURS if _tile(rows, grid.move(c, d)) == "H")
            if not edges:
                return None
            edge, direction = edges[int(rng.integers(len(edges)))]
            return (self._safe_route(rows, cell, edge) if edge != cell else []) + [direction]
        return []


def _tile(rows, cell) -> str | None:
    r, c = cell
    return rows[r][c] if 0 <= r < len(rows) and 0 <= c < len(rows) else None


# --- minibehavior ---------------------------------------------------------------------------------
class MiniBehaviorMCQv1(MiniBehaviorMCQ):
    """MINIBEHAVIOR with v0's scripts plus bumps into walls and furniture, repeated pick-ups, drops
    in the wrong place and fumbling (random actions, invalid ones included), up to ``4n`` actions."""

    id = "minibehavior-mcq-v1"
    success_weights = {"shortest": 0.2, "detour": 0.15, "retry": 0.1, "then-move": 0.1, "bumpy": 0.15,
                       "double-pick-up": 0.1, "wrong-drop-first": 0.1, "fumble-first": 0.1}
    failure_weights = {"drop-away": 0.15, "pick-up-away": 0.1, "no-drop": 0.1, "pick-up-again": 0.1,
                       "no-pick-up": 0.1, "bumpy-away": 0.15, "double-pick-up-away": 0.1, "fumble-after": 0.2}
    scripts = {
        **SUCCESS_SCRIPTS, **FAILURE_SCRIPTS,
        "bumpy": ("bump", "printer", "bump", "pick up", "table", "bump", "drop"),
        "double-pick-up": ("printer", "pick up", "pick up", "anywhere", "table", "drop"),
        "wrong-drop-first": ("printer", "pick up", "drop", "away-table", "drop", "table", "drop"),
        "fumble-first": ("fumble", "printer", "pick up", "table", "drop"),
        "bumpy-away": ("printer", "bump", "pick up", "bump", "away-table", "drop", "bump"),
        "double-pick-up-away": ("printer", "pick up", "pick up", "away-table", "drop", "drop"),
        "fumble-after": ("printer", "pick up", "table", "fumble"),
    }

    def _sequence(self, state, variant: str, rng: np.random.Generator) -> list[str] | None:
        """v0's scripts and these, refused beyond ``4n`` actions."""
        actions = super()._sequence(state, variant, rng)
        return actions if actions and len(actions) <= 4 * state.size else None

    def _script_part(self, state, step: str, rng: np.random.Generator) -> list[str] | None:
        """v0's script steps plus ``bump`` (a move into a wall, the table or the printer, which
        changes nothing) and ``fumble`` (2-n random actions, valid or not)."""
        if step == "bump":
            return _bump(state, rng)
        if step == "fumble":
            return [ACTIONS[int(rng.integers(len(ACTIONS)))] for _ in range(int(rng.integers(2, state.size + 1)))]
        if step.endswith("printer") and state.printer is None:  # a fumble picked it up already
            return None
        return super()._script_part(state, step, rng)


def _bump(state, rng: np.random.Generator) -> list[str]:
    """One move into whatever blocks the agent (wall, table, printer), or nothing if it is free."""
    table = frozenset(state.table)
    blocked = [d for d in grid.NEIGHBOURS
               if _transition(state.size, table, state.agent, state.printer, d) == (state.agent, state.printer)]
    return [blocked[int(rng.integers(len(blocked)))]] if blocked else []
