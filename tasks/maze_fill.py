"""``maze-nav-v1``: maze route planning whose visual thoughts fill the dead ends before walking.

Problems, prompts, answers and scoring are ``maze-nav-v0``'s (the same family: one version's policy
answers the other's problems). Only the gold chain differs. In v0 every move is a global decision:
which branch at a junction leads to the goal depends on the whole maze, and the tiny policy never
learned it (BENCHMARKS.md, "Planning from verifiable reward"). Here the chain first imagines dead-end
filling, the classic maze algorithm:

- "Fill the dead ends." fills, at once, every open cell that is neither the agent nor the goal and
  whose open sides lead to at most one unfilled cell. Repeated, this leaves exactly the start-to-goal
  path of a perfect maze. The cells a round fills are drawn *fresh* (mark ``N``) until the next round
  turns them old (mark ``X``), so the last round, which fills nothing, leaves a sketch with no fresh
  cell: "filling is done" is one colour missing from the latest sketch, a global look the policy
  already makes for the multiple-choice tasks. (The first design left the last round a no-op, and
  the policy had to compare two equal sketches: it never learned to stop filling.)
- Then each move goes through the one open side of the agent's cell that leads to an unfilled cell
  not yet walked on: a decision local to the agent's cell.

Each fill is a local rule over a cell, its walls and its four neighbours, the kind of rule a
convolutional sketcher can learn. Navigation marks only the goal, so the fills take the red-green
pairs that the multiple-choice candidates B and C hold in ``maze-mcq``: old fills cyan (``X``: red
0, green 1), fresh fills magenta (``N``: red 1, green 0); the trail keeps the blue channel. Both are
1.0 from white, the commonest cell, and 1.4 apart, so a long rollout that fades a fill toward white
never turns it into the other kind. (A first palette, old grey-blue (.5, .5) and fresh pink (1, .5),
had fresh between old and white: over the moves the sketcher faded old fills to "fresh" in 12 of 30
size-6 rollouts.)
"""
from __future__ import annotations

from tasks import grid
from tasks.formats import SketchRounds
from tasks.maze import _COLOURS, TRAIL, MazeNav, MazeState

FILLED = "X"  # filled in an earlier round
FRESH = "N"  # filled in the latest round
FILL_MARKS = (FILLED, FRESH)
FILL_ACTION = "fill"
FILL_THOUGHT = "Fill the dead ends."
_NAV_MARKS = (None, "G")  # the candidates A-D never appear in a navigation problem
_FILL_KINDS = [(mark, trail) for mark in (*_NAV_MARKS, *FILL_MARKS) for trail in TRAIL]
_FILL_COLOURS = _COLOURS | {FILLED: _COLOURS["B"], FRESH: _COLOURS["C"]}  # per TRAIL entry
_FILL_PALETTE = [_FILL_COLOURS[mark][TRAIL.index(trail)] for mark, trail in _FILL_KINDS]


def filled_cells(state: MazeState) -> set:
    """The cells any fill round has filled (old and fresh)."""
    return {cell for label, cell in state.marks if label in FILL_MARKS}


def fill_dead_ends(state: MazeState) -> MazeState:
    """One round of dead-end filling: every cell that is not the agent's and carries no mark, and
    whose open sides lead to at most one unfilled cell, becomes a fresh fill (all at once); the
    previous round's fresh fills become old."""
    layout, n = state.layout, state.layout.size
    marked = {cell for _, cell in state.marks}
    filled = filled_cells(state)
    new = []
    for r in range(n):
        for c in range(n):
            cell = (r, c)
            if cell in marked or cell == state.agent:
                continue
            exits = sum(1 for d in grid.NEIGHBOURS if layout.is_open(cell, d) and grid.move(cell, d) not in filled)
            if exits <= 1:
                new.append((FRESH, cell))
    aged = [(FILLED if label == FRESH else label, cell) for label, cell in state.marks]
    return MazeState(layout, state.agent, state.visited, tuple(sorted((*aged, *new))))


class MazeNavFill(SketchRounds, MazeNav):
    id = "maze-nav-v1"
    description = ("Maze route planning (VPRL / VoT) whose visual chain fills the dead ends, then walks the one "
                   "corridor left to the goal.")
    kinds, palette = _FILL_KINDS, _FILL_PALETTE
    stream_id = "maze-nav-v0"  # the same problems as v0, so the two versions are scored on one test set
    round_thought, round_action, round_word = FILL_THOUGHT, FILL_ACTION, "fill"  # `SketchRounds`

    def sketch_round(self, state: MazeState) -> MazeState:
        return fill_dead_ends(state)

    def gold_rounds(self, state: MazeState) -> list[MazeState]:
        """Fill rounds until one fills nothing (that last round included)."""
        rounds = []
        while True:
            filled = fill_dead_ends(state)
            rounds.append(filled)
            if filled_cells(filled) == filled_cells(state):
                return rounds
            state = filled
