"""``minibehavior-nav-v1``: room planning whose visual thoughts flood a two-layer distance wave first.

Problems, prompts, answers and scoring are ``minibehavior-nav-v0``'s (``stream_id``: one test set for
both); only the gold visual chain differs. In v0 the first move is a global decision: which side of the
printer to pick it up from depends on where the table is, and the tiny policy never learned it (0%,
BENCHMARKS.md). Here the chain computes the breadth-first distance to "installed" in the graph of
(cell, carrying) states, one local round at a time, the way `tasks.frozenlake_wave` does for lakes:

- Two layers of distances. The *carrying* layer ``C`` is the distance from a cell to "installed" with
  the printer in hand: 1 next to the table (drop), one more per move (the printer cell is free then).
  The *empty-handed* layer ``N``: one more than a neighbour's ``N`` (a move; the printer blocks), or,
  next to the printer, one more than the cell's own ``C`` (pick up). Both are drawn modulo 3, in three
  colours each.
- "Spread the wave." marks, at once, every unmarked floor cell next to the table or to a ``C`` cell
  with the next ``C``, and every ``C`` cell next to an ``N`` cell, or next to the printer, with the
  next ``N``, which then replaces its ``C`` colour. All of this reads only the previous round and the
  four neighbours, and it is exactly the breadth-first distance: the ``C`` front always leads the
  ``N`` front (carrying is never slower), so no rule ever needs a ``C`` value that ``N`` has covered
  (`tests/test_minibehavior_wave.py` checks both layers against `minibehavior.plan_distance`).
  Rounds go on until the agent's cell is ``N``-marked: as many rounds as the plan has actions.
- Then each move goes to the first neighbour (up, down, left, right: the gold plan's tie order)
  coloured one less; with none, the agent is next to the printer and picks it up. Picking up (and
  dropping) clears the wave: the room is drawn as in v0 again, and the wave is spread once more, now
  in the carrying layer only, until it reaches the agent; moves go down it, and next to the table
  (no neighbour one less) the agent drops the printer. Every decision reads the agent's cell and its
  neighbours, and the plan is the gold plan exactly.

Drawing: a room without marks is drawn as in v0. With marks, every cell is one flat colour (wall,
floor, table or a wave colour), and the agent (black) and the printer lying on the floor (grey) are
squares in the centre of their cells, so the colour under them stays visible; no grey square means
the agent carries the printer. Wave colours: six of the {0, .5, 1}^3 lattice, at least 0.707 from each
other, from the wall, floor and table colours and from both squares (v0's red, magenta and blue are
0.5 from some of them, which is why the squares take other colours).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from tasks import grid
from tasks.formats import SketchRounds
from tasks.minibehavior import CELL_PX, KINDS, MAX_SIZE, MIN_SIZE, PALETTE, MiniBehaviorNav, RoomState, _inside

WAVE_THOUGHT = "Spread the wave."
WAVE_ACTION = "spread"
CARRY, EMPTY = 0, 1  # the layers: the printer in hand (C) or not (N)
WAVE_COLOURS = {
    CARRY: ((0, 0.5, 1), (0.5, 0, 1), (0, 1, 0.5)),  # distance mod 3 = 0, 1, 2: azure, violet, spring green
    EMPTY: ((1, 0.5, 0), (1, 0, 0.5), (0.5, 1, 0)),  # orange, rose, chartreuse
}
MARKED_KINDS = ("wall", "floor", "table", *((layer, k) for layer in (CARRY, EMPTY) for k in range(3)))
MARKED_PALETTE = [PALETTE[KINDS.index("wall")], PALETTE[KINDS.index("floor")], PALETTE[KINDS.index("table")],
                  *WAVE_COLOURS[CARRY], *WAVE_COLOURS[EMPTY]]
CENTRES = {"agent": (0, 0, 0), "printer": (0.5, 0.5, 0.5)}  # squares; the agent carries the printer when none is drawn
_CENTRE = slice(2, 6)  # the 4x4 square inside an 8-px cell that shows the agent or the printer
_BAND = np.ones((CELL_PX, CELL_PX), dtype=bool)
_BAND[_CENTRE, _CENTRE] = False
_BAND[[0, -1], :] = _BAND[:, [0, -1]] = False  # the ring between a cell's edge and its centre square
_RING_PIXELS, _CENTRE_PIXELS = int(_BAND.sum()), (_CENTRE.stop - _CENTRE.start) ** 2


@dataclass(frozen=True)
class WaveRoom(RoomState):
    """A room state plus the wave drawn so far: (cell, layer, distance mod 3), one entry per cell, sorted."""

    wave: tuple[tuple[tuple[int, int], int, int], ...] = ()

    def marks(self) -> dict:
        return {cell: (layer, k) for cell, layer, k in self.wave}


def _with_wave(state: RoomState, marks: dict) -> WaveRoom:
    """``state`` with these marks (none once the printer is installed: the chain is over)."""
    marks = {} if state.installed else marks
    return WaveRoom(state.size, state.table, state.agent, state.printer,
                    tuple(sorted((cell, layer, k) for cell, (layer, k) in marks.items())))


def spread(state: RoomState) -> WaveRoom:
    """One round of the wave (see the module docstring); nothing once the printer is installed."""
    marks = dict(WaveRoom.marks(state)) if isinstance(state, WaveRoom) else {}
    if state.installed:
        return _with_wave(state, marks)
    table, n = set(state.table), state.size
    new = {}
    for r in range(1, n - 1):
        for c in range(1, n - 1):
            cell = (r, c)
            if cell in table:
                continue
            around = [grid.move(cell, d) for d in grid.NEIGHBOURS]
            here = marks.get(cell)
            if here is None:  # the carrying layer reaches it: from the table (drop) or a carrying neighbour
                if any(x in table for x in around):
                    new[cell] = (CARRY, 1)
                else:
                    seen = [marks[x][1] for x in around if marks.get(x, (None,))[0] == CARRY]
                    if seen:
                        new[cell] = (CARRY, (seen[0] + 1) % 3)
            elif here[0] == CARRY and not state.carrying and cell != state.printer:
                if state.printer in around:  # pick up here: one more than carrying from here
                    new[cell] = (EMPTY, (here[1] + 1) % 3)
                else:
                    seen = [marks[x][1] for x in around if marks.get(x, (None,))[0] == EMPTY]
                    if seen:
                        new[cell] = (EMPTY, (seen[0] + 1) % 3)
    return _with_wave(state, {**marks, **new})


def active_layer(state: RoomState) -> int:
    return CARRY if state.carrying else EMPTY


def wave_done(state: RoomState) -> bool:
    """Whether the wave of the agent's layer has reached the agent's cell (or the printer is installed)."""
    mark = WaveRoom.marks(state).get(state.agent) if isinstance(state, WaveRoom) else None
    return state.installed or (mark is not None and mark[0] == active_layer(state))


def descend(state: WaveRoom) -> str | None:
    """The action the wave shows from the agent's cell: the first neighbour (up, down, left, right) of
    the agent's layer coloured one less, else pick up (empty-handed) or drop (carrying); None off the wave."""
    marks, layer = state.marks(), active_layer(state)
    here = marks.get(state.agent)
    if here is None or here[0] != layer:
        return None
    for direction in grid.NEIGHBOURS:
        if marks.get(grid.move(state.agent, direction)) == (layer, (here[1] - 1) % 3):
            return direction
    return "drop" if state.carrying else "pick up"


class MiniBehaviorNavWave(SketchRounds, MiniBehaviorNav):
    id = "minibehavior-nav-v1"
    description = ("MiniBehavior planning (VPRL) whose visual chain floods a two-layer distance wave (carrying or "
                   "not), walks down it to the printer, then floods and walks again to the table.")
    stream_id = "minibehavior-nav-v0"  # the same problems as v0, so the two versions are scored on one test set
    round_thought, round_action, round_word = WAVE_THOUGHT, WAVE_ACTION, "wave"  # `SketchRounds`

    def sketch_round(self, state: RoomState) -> WaveRoom:
        return spread(state)

    def drawn_move(self, state) -> str | None:
        """The wave's descent from the agent's cell (`descend`), once the wave has reached it."""
        return descend(state) if self.rounds_done(state) and getattr(state, "wave", None) else None

    def rounds_done(self, state) -> bool:
        """Wave rounds until the agent's layer reaches the agent."""
        return wave_done(state)

    def plan_phases(self, plan: list[str]) -> list[list[str]]:
        """To the pick up, then the rest: picking up clears the wave, and the carrying wave is spread anew."""
        split = plan.index("pick up") + 1 if "pick up" in plan else len(plan)
        return [part for part in (plan[:split], plan[split:]) if part]

    def step(self, state: RoomState, action: str) -> WaveRoom:
        moved = super().step(state, action)  # a wave round (`SketchRounds`), or v0's action
        if action == self.round_action:
            return moved
        if moved is state:  # an invalid action changes nothing
            return state if isinstance(state, WaveRoom) else _with_wave(state, {})
        keep = action in grid.NEIGHBOURS  # picking up or dropping starts a fresh wave
        return _with_wave(moved, WaveRoom.marks(state) if keep and isinstance(state, WaveRoom) else {})

    def state_from_json(self, record: dict) -> WaveRoom:
        base = super().state_from_json(record)
        marks = {}
        for entry in record.get("wave", []):
            if not (isinstance(entry, (list, tuple)) and len(entry) == 3 and entry[1] in (CARRY, EMPTY) and entry[2] in (0, 1, 2)):
                raise ValueError(f"a wave entry is [[row, column], layer 0 or 1, distance mod 3], got {entry!r}")
            marks[tuple(entry[0])] = (int(entry[1]), int(entry[2]))
        return _with_wave(base, marks)

    def state_to_json(self, state: RoomState) -> dict:
        record = super().state_to_json(state)
        if getattr(state, "wave", ()):
            record["wave"] = [[list(cell), layer, k] for cell, layer, k in state.wave]
        return record

    # --- drawing and reading ---------------------------------------------------------------------
    def render(self, state: RoomState) -> Image.Image:
        marks = state.marks() if isinstance(state, WaveRoom) else {}
        if not marks:
            return super().render(state)  # as v0
        n, table = state.size, set(state.table)
        kinds = np.array([[MARKED_KINDS.index(marks[(r, c)] if (r, c) in marks else "table" if (r, c) in table
                                              else "floor" if _inside(n, (r, c)) else "wall")
                           for c in range(n)] for r in range(n)])
        array = grid.paint_cells(kinds, MARKED_PALETTE, CELL_PX)  # (8n, 8n, 3)
        centres = {state.agent: "agent"}
        if state.printer is not None:
            centres[state.printer] = "printer"
        for (r, c), name in centres.items():
            array[r * CELL_PX + _CENTRE.start:r * CELL_PX + _CENTRE.stop,
                  c * CELL_PX + _CENTRE.start:c * CELL_PX + _CENTRE.stop] = CENTRES[name]
        return grid.to_image(array)

    def read(self, image: Image.Image) -> WaveRoom:
        """The nearer (by re-render) of two readings: a room drawn as in v0, or one with a wave."""
        n = grid.grid_size_from_image(image, CELL_PX)
        if not MIN_SIZE <= n <= MAX_SIZE:
            raise ValueError(f"a MiniBehavior room image is {MIN_SIZE}-{MAX_SIZE} cells of {CELL_PX} px a side, got {n} cells")
        readings, errors = [], []
        for reader in (lambda: _with_wave(super(MiniBehaviorNavWave, self).read(image), {}), lambda: self._read_marked(image)):
            try:
                readings.append(reader())
            except ValueError as error:
                errors.append(error)
        if not readings:
            raise ValueError(f"not a room drawn as in v0 ({errors[0]}) nor one with a wave ({errors[1]})")
        pixels = grid.to_array(image)

        def misfit(state: WaveRoom) -> float:
            side = state.size * CELL_PX
            return float(((grid.to_array(self.render(state)) - pixels[:side, :side]) ** 2).sum())

        return min(readings, key=misfit)

    def _read_marked(self, image: Image.Image) -> WaveRoom:
        n = grid.grid_size_from_image(image, CELL_PX)
        array = grid.to_array(image)[:n * CELL_PX, :n * CELL_PX]
        blocks = array.reshape(n, CELL_PX, n, CELL_PX, 3).transpose(0, 2, 1, 3, 4)  # (n, n, 8, 8, 3)
        band = blocks[:, :, _BAND].mean(axis=2)  # (n, n, 3)
        centre = blocks[:, :, _CENTRE, _CENTRE].mean(axis=(2, 3))  # (n, n, 3): the centre square
        # each cell is one band colour, with or without a square of a CENTRES colour; blur mixes the two, so
        # each (band, square) pair is scored by how near the ring and the middle come to their mixes
        kinds, which = _fit_cells(band, centre)  # (n, n) MARKED_PALETTE ids; (n, n) -1 or a CENTRES index
        names = list(CENTRES)
        found = {name: [(r, c) for r in range(n) for c in range(n) if which[r, c] == i] for i, name in enumerate(names)}
        agents = found["agent"]
        if len(agents) != 1:
            raise ValueError(f"expected exactly one agent (a black square) in the room image, found {len(agents)}")
        if len(found["printer"]) > 1:
            raise ValueError(f"expected at most one printer (a grey square) in the room image, found {len(found['printer'])}")
        carrying = not found["printer"]
        table, marks = [], {}
        for r in range(n):
            for c in range(n):
                kind = MARKED_KINDS[kinds[r, c]]
                wall_cell = not _inside(n, (r, c))
                if (kind == "wall") != wall_cell:
                    raise ValueError("not a MiniBehavior room: the wall must be exactly the 1-cell border")
                if kind == "table":
                    table.append((r, c))
                elif isinstance(kind, tuple):
                    marks[(r, c)] = kind
        if not marks:
            raise ValueError("a room drawn with a wave has at least one marked cell")
        base = RoomState(n, tuple(table), agents[0], None if carrying else found["printer"][0])
        return _with_wave(base, marks)


def _segment_misfit(point: np.ndarray, start: np.ndarray, end: np.ndarray, most: float = 0.5) -> np.ndarray:
    """Squared distance from ``point`` to the mixes of ``start`` with up to ``most`` of ``end`` (broadcast, (..., 3))."""
    towards = end - start
    share = (((point - start) * towards).sum(-1) / (towards ** 2).sum(-1).clip(min=1e-6)).clip(0, most)
    return ((point - start - share[..., None] * towards) ** 2).sum(-1)


def _fit_cells(band: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """band, centre (n, n, 3) mean colours -> each cell's band kind (MARKED_PALETTE id) and its centre
    square (a CENTRES index, -1 for none): the (band, square) pair whose blurred mixes fit best."""
    holders = np.asarray(MARKED_PALETTE, dtype=np.float32)  # (K, 3)
    squares = np.asarray([*MARKED_PALETTE, *CENTRES.values()], dtype=np.float32)  # (K + S, 3)
    k, s = len(MARKED_PALETTE), len(CENTRES)
    bands = np.repeat(holders, k + s, axis=0).reshape(k, k + s, 3)  # (K, K + S, 3): hypothesis (band, middle)
    middles = np.broadcast_to(squares, (k, k + s, 3))
    allowed = np.zeros((k, k + s), dtype=bool)
    allowed[np.arange(k), np.arange(k)] = True  # no square: the middle shows the band
    allowed[[i for i, kind in enumerate(MARKED_KINDS) if kind not in ("wall", "table")], k:] = True
    ring = _segment_misfit(band[:, :, None, None], bands, middles)  # (n, n, K, K + S)
    middle = _segment_misfit(centre[:, :, None, None], middles, bands, most=0.35)  # blur takes less from the square
    score = np.where(allowed, _RING_PIXELS * ring + _CENTRE_PIXELS * middle, np.inf)  # weighted by pixels averaged
    score = score.reshape(*band.shape[:2], -1)  # (n, n, K * (K + S))
    best = score.argmin(-1)  # (n, n)
    kind, square = best // (k + s), best % (k + s)
    return kind, np.where(square >= k, square - k, -1)
