"""``frozenlake-nav-v1``: lake route planning whose visual thoughts flood distances from the goal first.

Problems, prompts, answers and scoring are ``frozenlake-nav-v0``'s (``stream_id``: one test set for
both); only the gold visual chain differs. In v0 each move is a global decision (which way round the
holes is shortest depends on the whole lake), and the shipped policy's failures are mostly a wrong
first move (BENCHMARKS.md, issue 17). Here the chain first imagines the breadth-first wave from the
goal, the way the gold plan is computed:

- "Spread the wave." marks, at once, every unmarked ice or start cell next to a marked cell (the goal
  counts as marked, distance 0) with the next distance, drawn *modulo 3* as one of three colours.
  That is a local rule: an unmarked cell next to a marked one is exactly one farther from the goal
  than every marked neighbour (breadth-first order), so its colour is any marked neighbour's plus one.
  Rounds go on until the agent's cell is marked: as many rounds as the plan has moves.
- Then each move goes to the first neighbour (up, down, left, right: the gold plan's tie order) whose
  colour is the agent's cell's minus one modulo 3, or onto the goal: a decision local to the agent's
  cell, and the gold plan exactly.

An unmarked cell is drawn as in v0 (so an unmarked lake, the problem's image, looks the same in both
versions); a marked cell shows its wave colour, with the agent as a red square in its centre, so the
cell under the agent still shows its colour (the move rule reads it). When the wave covers the start
tile it becomes ice in the state (both are safe; the image can no longer tell them apart). Wave
colours: green, magenta, azure, at least 0.7 from each other and from every v0 cell colour.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from tasks import grid
from tasks.formats import SketchRounds
from tasks.frozenlake import CELL_PX, KINDS, PALETTE, FrozenLakeNav, LakeState, _find

WAVE_THOUGHT = "Spread the wave."
WAVE_ACTION = "spread"
WAVE_COLOURS = ((0, 1, 0), (1, 0, 1), (0, 0.5, 1))  # distance to the goal mod 3 = 0, 1, 2
AGENT_COLOUR = (1, 0, 0)
BAND_KINDS = [*KINDS, *(("wave", k) for k in range(3))]  # v0's (tile, agent here) kinds, then the wave colours
BAND_PALETTE = [*PALETTE, *WAVE_COLOURS]
_CENTRE = slice(2, 6)  # the agent square inside an 8-px cell
_BAND = np.zeros((CELL_PX, CELL_PX), dtype=bool)
_BAND[1:7, 1:7] = True
_BAND[_CENTRE, _CENTRE] = False  # the 1-px band between a cell's edge and its centre square


@dataclass(frozen=True)
class WaveState(LakeState):
    """A lake state plus the wave drawn so far: (cell, distance to the goal mod 3), sorted."""

    wave: tuple[tuple[tuple[int, int], int], ...] = ()

    def colours(self) -> dict:
        return dict(self.wave)


def spread(state: LakeState) -> WaveState:
    """One round of the wave (see the module docstring); the goal is its source, distance 0."""
    n, marked = state.size, dict(getattr(state, "wave", ()))
    if not any("G" in row for row in state.desc):  # a misdrawn sketch lost the goal: nothing to spread from
        return WaveState(state.desc, state.agent, tuple(sorted(marked.items())))
    source = {**marked, _find(state.desc, "G"): 0}
    new = {}
    for r in range(n):
        for c in range(n):
            if (r, c) in source or state.desc[r][c] in "HG":
                continue
            for direction in grid.NEIGHBOURS:
                neighbour = grid.move((r, c), direction)
                if neighbour in source:
                    new[(r, c)] = (source[neighbour] + 1) % 3
                    break
    desc = tuple("".join("F" if ch == "S" and (r, c) in new else ch for c, ch in enumerate(row)) for r, row in enumerate(state.desc))
    return WaveState(desc, state.agent, tuple(sorted({**marked, **new}.items())))


def wave_done(state: LakeState) -> bool:
    """Whether the wave has reached the agent's cell (or the agent is on the goal)."""
    return state.agent in dict(getattr(state, "wave", ())) or state.tile(state.agent) == "G"


def descend(state: WaveState) -> str | None:
    """The move the wave shows from the agent's cell: the first neighbour (up, down, left, right)
    one closer to the goal, i.e. coloured one less mod 3, or the goal itself; None off the wave."""
    colours = state.colours()
    here = colours.get(state.agent)
    if here is None:
        return None
    for direction in grid.NEIGHBOURS:
        r, c = grid.move(state.agent, direction)
        if not (0 <= r < state.size and 0 <= c < state.size):
            continue
        if (here == 1 and state.desc[r][c] == "G") or colours.get((r, c)) == (here - 1) % 3:
            return direction
    return None


class FrozenLakeNavWave(SketchRounds, FrozenLakeNav):
    id = "frozenlake-nav-v1"
    description = ("FrozenLake route planning (VPRL) whose visual chain floods distances from the goal, then walks "
                   "down them.")
    stream_id = "frozenlake-nav-v0"  # the same problems as v0, so the two versions are scored on one test set
    round_thought, round_action, round_word = WAVE_THOUGHT, WAVE_ACTION, "wave"  # `SketchRounds`

    def sketch_round(self, state: LakeState) -> WaveState:
        return spread(state)

    def drawn_move(self, state) -> str | None:
        """The wave's descent from the agent's cell (`descend`), once the wave has reached it."""
        return descend(state) if self.rounds_done(state) and getattr(state, "wave", None) else None

    def rounds_done(self, state) -> bool:
        """Wave rounds until the agent's cell is marked (one per move of the shortest plan)."""
        return wave_done(state)

    def state_from_json(self, record: dict) -> WaveState:
        base = super().state_from_json(record)
        return WaveState(base.desc, base.agent, tuple(sorted((tuple(cell), int(k)) for cell, k in record.get("wave", []))))

    def state_to_json(self, state: LakeState) -> dict:
        record = super().state_to_json(state)
        if getattr(state, "wave", ()):
            record["wave"] = [[list(cell), k] for cell, k in state.wave]
        return record

    def step(self, state: LakeState, action: str) -> WaveState:
        moved = super().step(state, action)  # a wave round, or a v0 move (which keeps the wave drawn)
        return moved if isinstance(moved, WaveState) else WaveState(moved.desc, moved.agent, getattr(state, "wave", ()))

    def render(self, state: LakeState) -> Image.Image:
        n, colours = state.size, dict(getattr(state, "wave", ()))
        kinds = np.array([[BAND_KINDS.index(("wave", colours[(r, c)]) if (r, c) in colours
                                            else (state.desc[r][c], (r, c) == state.agent)) for c in range(n)] for r in range(n)])
        array = grid.paint_cells(kinds, BAND_PALETTE, CELL_PX)  # (8n, 8n, 3)
        if state.agent in colours:  # the agent on a marked cell: a red centre square
            top, left = state.agent[0] * CELL_PX, state.agent[1] * CELL_PX
            array[top + _CENTRE.start:top + _CENTRE.stop, left + _CENTRE.start:left + _CENTRE.stop] = AGENT_COLOUR
        return grid.to_image(array)

    def read(self, image: Image.Image) -> WaveState:
        """Each cell's band (a v0 cell colour or a wave colour) and, on a wave cell, its centre (the agent or not)."""
        n = grid.grid_size_from_image(image, CELL_PX)
        array = grid.to_array(image)[:n * CELL_PX, :n * CELL_PX]
        blocks = array.reshape(n, CELL_PX, n, CELL_PX, 3).transpose(0, 2, 1, 3, 4)  # (n, n, 8, 8, 3)
        band = blocks[:, :, _BAND].mean(axis=2)  # (n, n, 3)
        centre = blocks[:, :, 3:5, 3:5].mean(axis=(2, 3))  # (n, n, 3): the agent square's middle, clear of blur
        kinds = grid.nearest_kind(band, BAND_PALETTE)  # (n, n)
        # a red middle means the agent: its cell is a v0 agent kind or a wave cell (whose band the red square
        # tints under blur), so it is classified among those only
        near_red = ((centre - np.asarray(AGENT_COLOUR)) ** 2).sum(-1) < 0.45 ** 2  # (n, n)
        agent_kinds = [i for i, (first, second) in enumerate(BAND_KINDS) if first == "wave" or second is True]
        among = np.asarray(agent_kinds)[grid.nearest_kind(band, [BAND_PALETTE[i] for i in agent_kinds])]  # (n, n)
        kinds = np.where(near_red, among, kinds)
        drawn = np.asarray(BAND_PALETTE, dtype=np.float32)[kinds]  # (n, n, 3): the band's colour as drawn
        red_centre = ((centre - np.asarray(AGENT_COLOUR)) ** 2).sum(-1) < ((centre - drawn) ** 2).sum(-1)  # (n, n)
        desc, wave, agents = [], [], []
        for r in range(n):
            row = []
            for c in range(n):
                first, second = BAND_KINDS[kinds[r, c]]
                if first == "wave":
                    row.append("F")
                    wave.append(((r, c), second))
                    if red_centre[r, c]:
                        agents.append((r, c))
                else:
                    row.append(first)
                    if second:
                        agents.append((r, c))
            desc.append("".join(row))
        if len(agents) != 1:
            raise ValueError(f"expected exactly one agent in the lake image, found {len(agents)}")
        return WaveState(tuple(desc), agents[0], tuple(sorted(wave)))
