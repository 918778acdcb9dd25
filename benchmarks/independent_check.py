"""The shipped MCQ bundles on problems the project's generators never made.

A problem source that shares no code with the `tasks` generators. It has its own worlds, its own
action sequences and its own simulators for the labels:

- maze: perfect mazes by Kruskal or Wilson, a third with extra walls knocked out (loops); walks
  that backtrack and revisit, sometimes followed by a route to a random cell, up to 4n moves; the
  cell where the walk ends and three other cells (the start among them at times) are the
  candidates, the gold letter uniform.
- frozenlake: random hole maps (density 0.15-0.4, S and G anywhere, G reachable); uniform random
  actions or a random walk followed by a route into the goal or a hole, up to 4n actions,
  outcome classes balanced by rejection. Labels from this script's simulator, checked against
  gymnasium's ``FrozenLakeEnv(is_slippery=False)`` on every problem.
- maze-nav: perfect mazes by Kruskal or Wilson (the task generator carves by depth-first search,
  whose long corridors these lack), start and goal uniform among the cell pairs at least n - 1
  moves apart; the gold plan is this script's breadth-first route.
- minibehavior: rooms with a random table rectangle; plans to fetch the printer and drop it on the
  table with random actions mixed in, cut short, or followed by more actions; classes balanced.
- frozenlake-nav and minibehavior-nav: the same lakes and rooms; the task's gold plan must be one of
  this script's shortest (its own breadth-first search, over (agent, printer) pairs for rooms) and
  reach the goal under its own rules (and gymnasium's, for lakes).

Problems are built through the public API (``from_layout``) and each label is also checked against
the task's own answer; a disagreement stops the script. Then the bundle runs greedy on these
problems and on the same number of v1 test-split problems per size, and both are reported by size
and by stated-action-length bin, with Wilson 95% intervals:

    python benchmarks/independent_check.py --task maze --bundle vot/pretrained/maze-mcq-v1 --count 100 \
        [--mvot DIR] [--json OUT]

``--mvot`` also runs MVoT's released samples (unzip ``data_samples.zip`` of chengzu-li/MVoT).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tasks  # noqa: E402
from tasks.metrics import LENGTH_BINS, length_bin, rate  # noqa: E402
from tasks.splits import generate_split  # noqa: E402

MOVES = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}


def _step(cell, action):
    dr, dc = MOVES[action]
    return cell[0] + dr, cell[1] + dc


# --- maze -----------------------------------------------------------------------------------------
class Walls:
    """Passages of an n x n grid maze as a set of frozenset cell pairs."""

    def __init__(self, n: int, passages: set):
        self.n, self.passages = n, passages

    def open(self, cell, action) -> bool:
        return frozenset((cell, _step(cell, action))) in self.passages

    def exits(self, cell) -> list[str]:
        return [a for a in MOVES if self.open(cell, a)]

    def route(self, start, goal) -> list[str] | None:
        """A shortest move list by breadth-first search; None when ``goal`` is cut off."""
        back, todo = {start: None}, deque([start])
        while todo:
            cell = todo.popleft()
            for action in self.exits(cell):
                nxt = _step(cell, action)
                if nxt not in back:
                    back[nxt] = (cell, action)
                    todo.append(nxt)
        if goal not in back:
            return None
        moves, cell = [], goal
        while back[cell] is not None:
            cell, action = back[cell]
            moves.append(action)
        return moves[::-1]

    def layout(self):
        """The same maze as the public `tasks.maze.MazeLayout`."""
        from tasks.maze import MazeLayout

        n = self.n
        right = tuple(tuple(frozenset(((r, c), (r, c + 1))) in self.passages for c in range(n - 1)) for r in range(n))
        down = tuple(tuple(frozenset(((r, c), (r + 1, c))) in self.passages for c in range(n)) for r in range(n - 1))
        return MazeLayout(n, right, down)


def _edges(n: int) -> list:
    return [((r, c), (r, c + 1)) for r in range(n) for c in range(n - 1)] + \
           [((r, c), (r + 1, c)) for r in range(n - 1) for c in range(n)]


def kruskal(rng: np.random.Generator, n: int) -> Walls:
    parent = {(r, c): (r, c) for r in range(n) for c in range(n)}

    def root(cell):
        while parent[cell] != cell:
            parent[cell] = parent[parent[cell]]
            cell = parent[cell]
        return cell

    passages = set()
    edges = _edges(n)
    for i in rng.permutation(len(edges)):
        a, b = edges[i]
        if root(a) != root(b):
            parent[root(a)] = root(b)
            passages.add(frozenset((a, b)))
    return Walls(n, passages)


def wilson(rng: np.random.Generator, n: int) -> Walls:
    cells = [(r, c) for r in range(n) for c in range(n)]
    inside = {cells[int(rng.integers(len(cells)))]}
    passages = set()
    for start in (cells[i] for i in rng.permutation(len(cells))):
        walk = [start]
        while walk[-1] not in inside:  # loop-erased random walk until it hits the tree
            options = [_step(walk[-1], a) for a in MOVES]
            options = [c for c in options if 0 <= c[0] < n and 0 <= c[1] < n]
            nxt = options[int(rng.integers(len(options)))]
            walk = walk[:walk.index(nxt) + 1] if nxt in walk else walk + [nxt]
        for a, b in zip(walk, walk[1:]):
            passages.add(frozenset((a, b)))
        inside.update(walk)
    return Walls(n, passages)


def maze_problem(rng: np.random.Generator, n: int, task) -> tuple:
    walls = (kruskal if rng.random() < 0.5 else wilson)(rng, n)
    if rng.random() < 1 / 3:  # loops: knock out a few more walls
        closed = [e for e in _edges(n) if frozenset(e) not in walls.passages]
        for i in rng.choice(len(closed), size=min(len(closed), int(rng.integers(1, n + 1))), replace=False):
            walls.passages.add(frozenset(closed[i]))
    cells = [(r, c) for r in range(n) for c in range(n)]
    while True:
        start = cells[int(rng.integers(len(cells)))]
        cell, actions = start, []
        for _ in range(int(rng.integers(1, 3 * n + 1))):  # a walk that backtracks at will
            action = walls.exits(cell)[int(rng.integers(len(walls.exits(cell))))]
            actions.append(action)
            cell = _step(cell, action)
        if rng.random() < 0.5:  # then a route to a random cell
            target = cells[int(rng.integers(len(cells)))]
            actions += walls.route(cell, target)
            cell = target
        if 0 < len(actions) <= 4 * n:
            break
    others = [c for c in cells if c != cell]
    distractors = [others[i] for i in rng.choice(len(others), size=3, replace=False)]
    if start != cell and start not in distractors and rng.random() < 0.3:
        distractors[0] = start  # a candidate on the start cell, as MVoT's format allows
    gold = int(rng.integers(4))
    candidates = distractors[:gold] + [cell] + distractors[gold:]
    letters = dict(zip("ABCD", candidates))
    problem = task.from_layout(walls.layout(), start, letters, actions=actions, meta={"source": "independent_check"})
    return problem, "ABCD"[gold]


def nav_maze_problem(rng: np.random.Generator, n: int, task) -> tuple:
    walls = (kruskal if rng.random() < 0.5 else wilson)(rng, n)
    cells = [(r, c) for r in range(n) for c in range(n)]
    while True:
        start, goal = (cells[int(i)] for i in rng.choice(len(cells), size=2, replace=False))
        route = walls.route(start, goal)
        if len(route) >= n - 1:
            break
    problem = task.from_layout(walls.layout(), start, goal, meta={"source": "independent_check"})
    return problem, " ".join(f"Go {a}." for a in route)


# --- frozen lake ----------------------------------------------------------------------------------
def lake_map(rng: np.random.Generator, n: int) -> list[str]:
    while True:
        holes = rng.random((n, n)) < rng.uniform(0.15, 0.4)
        grid = [["H" if h else "F" for h in row] for row in holes]
        s, g = (divmod(int(i), n) for i in rng.choice(n * n, size=2, replace=False))
        grid[s[0]][s[1]], grid[g[0]][g[1]] = "S", "G"
        rows = ["".join(row) for row in grid]
        if lake_route(rows, s, lambda cell: cell == g) is not None:
            return rows


def _tile(rows, cell):
    n = len(rows)
    return rows[cell[0]][cell[1]] if 0 <= cell[0] < n and 0 <= cell[1] < n else None


def lake_route(rows, start, done) -> list[str] | None:
    """Shortest moves from ``start`` to a cell where ``done(cell)``, entering no hole or goal on the way."""
    back, todo = {start: None}, deque([start])
    while todo:
        cell = todo.popleft()
        if done(cell) and cell != start:
            moves = []
            while back[cell] is not None:
                cell, action = back[cell]
                moves.append(action)
            return moves[::-1]
        if _tile(rows, cell) in ("H", "G") and cell != start:
            continue
        for action in MOVES:
            nxt = _step(cell, action)
            if _tile(rows, nxt) is not None and nxt not in back:
                back[nxt] = (cell, action)
                todo.append(nxt)
    return None


def lake_outcome(rows, actions) -> str:
    """A: reaches the goal, B: falls into a hole, C: neither; a move off the lake does nothing."""
    cell = next((r, row.index("S")) for r, row in enumerate(rows) if "S" in row)
    for action in actions:
        if _tile(rows, _step(cell, action)) is not None:
            cell = _step(cell, action)
        if _tile(rows, cell) in ("H", "G"):
            return "A" if _tile(rows, cell) == "G" else "B"
    return "C"


GYM_ACTIONS = {"left": 0, "down": 1, "right": 2, "up": 3}


def gymnasium_outcome(rows, actions) -> str:
    """The same label from gymnasium's deterministic FrozenLake."""
    from gymnasium.envs.toy_text.frozen_lake import FrozenLakeEnv

    env = FrozenLakeEnv(desc=rows, is_slippery=False)
    env.reset(seed=0)
    for action in actions:
        _, reward, terminated, _, _ = env.step(GYM_ACTIONS[action])
        if terminated:
            return "A" if reward > 0 else "B"
    return "C"


def lake_problem(rng: np.random.Generator, n: int, task) -> tuple:
    want = "ABC"[int(rng.integers(3))]
    while True:
        rows = lake_map(rng, n)
        start = next((r, row.index("S")) for r, row in enumerate(rows) if "S" in row)
        if rng.random() < 0.4:  # uniform random actions
            actions = [str(a) for a in rng.choice(list(MOVES), size=int(rng.integers(1, 4 * n + 1)))]
        else:  # a wander that keeps off holes and the goal, then a route into the goal or a hole
            cell, actions = start, []
            for _ in range(int(rng.integers(0, 2 * n + 1))):
                allowed = [a for a in MOVES if _tile(rows, _step(cell, a)) not in ("H", "G")]
                if not allowed:
                    break
                action = allowed[int(rng.integers(len(allowed)))]
                actions.append(action)
                cell = _step(cell, action) if _tile(rows, _step(cell, action)) is not None else cell
            target = {"A": "G", "B": "H"}.get(want)
            if target is not None:
                leg = lake_route(rows, cell, lambda c, t=target: _tile(rows, c) == t)
                if leg is None:
                    continue
                actions += leg
            if rng.random() < 0.3:
                actions += [str(a) for a in rng.choice(list(MOVES), size=int(rng.integers(1, n + 1)))]
        if not 0 < len(actions) <= 4 * n:
            continue
        label = lake_outcome(rows, actions)
        if label != want:
            continue
        gym = gymnasium_outcome(rows, actions)
        if gym != label:
            raise AssertionError(f"this simulator says {label}, gymnasium {gym}: {rows} {actions}")
        return task.from_layout(rows, actions, meta={"source": "independent_check"}), label


# --- minibehavior ---------------------------------------------------------------------------------
ROOM_ACTIONS = ("up", "down", "left", "right", "pick up", "drop")


def _room_move(n, table, agent, printer, action):
    """The published rules: a move into the wall, the table or the printer does nothing; pick up
    from a neighbouring cell; drop onto the first neighbouring table cell (up, down, left, right)."""
    if action in MOVES:
        nxt = _step(agent, action)
        if 1 <= nxt[0] <= n - 2 and 1 <= nxt[1] <= n - 2 and nxt not in table and nxt != printer:
            return nxt, printer
    elif action == "pick up":
        if printer is not None and abs(agent[0] - printer[0]) + abs(agent[1] - printer[1]) == 1:
            return agent, None
    elif action == "drop" and printer is None:
        for direction in ("up", "down", "left", "right"):
            if _step(agent, direction) in table:
                return agent, _step(agent, direction)
    return agent, printer


def room_installed(n, table, agent, printer, actions) -> bool:
    for action in actions:
        agent, printer = _room_move(n, table, agent, printer, action)
    return printer is not None and printer in table


def _room_route(n, blocked, start, goal_cells) -> list[str] | None:
    back, todo = {start: None}, deque([start])
    while todo:
        cell = todo.popleft()
        if cell in goal_cells:
            moves = []
            while back[cell] is not None:
                cell, action = back[cell]
                moves.append(action)
            return moves[::-1]
        for action in MOVES:
            nxt = _step(cell, action)
            if 1 <= nxt[0] <= n - 2 and 1 <= nxt[1] <= n - 2 and nxt not in blocked and nxt not in back:
                back[nxt] = (cell, action)
                todo.append(nxt)
    return None


def _near(cells) -> set:
    return {_step(c, a) for c in cells for a in MOVES}


def room_problem(rng: np.random.Generator, n: int, task) -> tuple:
    want = bool(rng.integers(2))
    while True:
        h, w = int(rng.integers(1, 3)), int(rng.integers(1, 4))
        r0, c0 = int(rng.integers(1, n - h)), int(rng.integers(1, n - w))
        table = {(r, c) for r in range(r0, r0 + h) for c in range(c0, c0 + w)}
        floor = [(r, c) for r in range(1, n - 1) for c in range(1, n - 1) if (r, c) not in table]
        agent, printer = (floor[int(i)] for i in rng.choice(len(floor), size=2, replace=False))
        to_printer = _room_route(n, table | {printer}, agent, _near([printer]) - table - {printer})
        if to_printer is None:
            continue
        at = agent
        for a in to_printer:
            at = _step(at, a)
        to_table = _room_route(n, table, at, _near(table) - table)
        if to_table is None:
            continue
        plan = to_printer + ["pick up"] + to_table + ["drop"]
        actions = []
        for action in plan:  # random actions mixed in
            while rng.random() < 0.25:
                actions.append(ROOM_ACTIONS[int(rng.integers(len(ROOM_ACTIONS)))])
            actions.append(action)
        style = rng.random()
        if style < 0.25:
            actions = actions[:int(rng.integers(1, len(actions)))]  # cut short
        elif style < 0.5:
            actions += [ROOM_ACTIONS[int(rng.integers(len(ROOM_ACTIONS)))] for _ in range(int(rng.integers(1, n)))]
        if not 0 < len(actions) <= 4 * n or room_installed(n, table, agent, printer, actions) != want:
            continue
        layout = {"size": n, "table": sorted([list(c) for c in table]), "printer": list(printer), "agent": list(agent)}
        try:
            problem = task.from_layout(layout, actions, meta={"source": "independent_check"})
        except tasks.InvalidLayout:
            continue
        return problem, "A" if want else "B"


def room_plan_length(n, table, agent, printer) -> int | None:
    """Fewest actions that install the printer: breadth-first over (agent, printer) pairs under this
    script's rules (`_room_move`), with no knowledge of how a plan is shaped."""
    seen, todo = {(agent, printer): 0}, deque([(agent, printer)])
    while todo:
        pair = todo.popleft()
        if pair[1] is not None and pair[1] in table:
            return seen[pair]
        for action in ROOM_ACTIONS:
            nxt = _room_move(n, table, *pair, action)
            if nxt not in seen:
                seen[nxt] = seen[pair] + 1
                todo.append(nxt)
    return None


def _checked_plan(problem, length, follow, what: str) -> tuple:
    """A planning problem whose gold plan this script checks: valid under its own simulator (``follow``
    returns whether the plan reaches the goal) and exactly as long as its own shortest ``length``."""
    plan = [a.strip().lower().replace("go ", "") for a in problem.answer.removeprefix("The answer is:").split(".") if a.strip()]
    if len(plan) != length or not follow(plan):
        raise AssertionError(f"{what}: the task's plan {problem.answer!r} is not one of this script's shortest ({length})")
    return problem, problem.answer


def nav_room_problem(rng: np.random.Generator, n: int, task) -> tuple:
    """Rooms as in `room_problem` (tables of 1-2 rows by 1-3 columns, anywhere inside); the gold plan
    must be a shortest plan by this script's own search (ties are the task's to break)."""
    while True:
        h, w = int(rng.integers(1, 3)), int(rng.integers(1, 4))
        if rng.random() < 0.5:
            h, w = w, h
        if h > n - 2 or w > n - 2:
            continue
        r0, c0 = int(rng.integers(1, n - h)), int(rng.integers(1, n - w))
        table = {(r, c) for r in range(r0, r0 + h) for c in range(c0, c0 + w)}
        floor = [(r, c) for r in range(1, n - 1) for c in range(1, n - 1) if (r, c) not in table]
        agent, printer = (floor[int(i)] for i in rng.choice(len(floor), size=2, replace=False))
        length = room_plan_length(n, table, agent, printer)
        if length is None:
            continue
        layout = {"size": n, "table": sorted([list(c) for c in table]), "printer": list(printer), "agent": list(agent)}
        problem = task.from_layout(layout, meta={"source": "independent_check"})
        return _checked_plan(problem, length, lambda plan: room_installed(n, table, agent, printer, plan), "room")


def nav_lake_problem(rng: np.random.Generator, n: int, task) -> tuple:
    """Lakes from `lake_map` (hole density 0.15-0.4, S and G anywhere); the gold plan must be a shortest
    safe route by this script's own search and reach the goal under its own and gymnasium's rules."""
    rows = lake_map(rng, n)
    start = next((r, row.index("S")) for r, row in enumerate(rows) if "S" in row)
    length = len(lake_route(rows, start, lambda cell: _tile(rows, cell) == "G"))
    problem = task.from_layout(rows, meta={"source": "independent_check"})
    return _checked_plan(problem, length, lambda plan: lake_outcome(rows, plan) == "A" == gymnasium_outcome(rows, plan),
                         f"lake {rows}")


SOURCES = {"maze": ("maze-mcq-v1", maze_problem), "maze-nav": ("maze-nav-v1", nav_maze_problem),
           "frozenlake": ("frozenlake-mcq-v1", lake_problem), "frozenlake-nav": ("frozenlake-nav-v0", nav_lake_problem),
           "minibehavior": ("minibehavior-mcq-v1", room_problem),
           "minibehavior-nav": ("minibehavior-nav-v1", nav_room_problem)}


def independent_problems(family: str, sizes, count: int, seed: int = 2026, task_id: str | None = None) -> list:
    """``count`` problems per size from this script's own source for ``family``, each label checked
    against the task's own answer (``task_id``: another version of the family's task)."""
    default_id, make = SOURCES[family]
    task = tasks.get(task_id or default_id)
    out = []
    for size in sizes:
        rng = np.random.default_rng([seed, size])
        for _ in range(count):
            problem, label = make(rng, size, task)
            if problem.answer != label:
                raise AssertionError(f"{task.id}: the task says {problem.answer}, this script {label}: {problem.id}")
            out.append(problem)
    return out


# --- MVoT's released samples ----------------------------------------------------------------------
MVOT_OUTCOMES = {"success": "A", "terminated": "B", "truncated": "C"}
MVOT_LAKE_ACTIONS = ("left", "down", "right", "up")  # gymnasium's action numbers


def mvot_problems(directory: str | Path, family: str) -> list:
    """MVoT's ``data_samples`` (unzipped from github.com/chengzu-li/MVoT): the 3x3 maze paths of
    ``maze/grid3.json`` and the FrozenLake trajectories of ``frozenlake/level*/data.json``, labelled by
    MVoT's own records (the path's last cell; ``exec_states``), each checked against the task's answer."""
    directory = Path(directory)
    out = []
    if family == "maze":
        task = tasks.get("maze-mcq-v1")
        for record in json.loads((directory / "maze" / "grid3.json").read_text()):
            layout = tasks.maze_from_mvot_info(record["maze_info"])
            candidates = dict(zip("ABCD", (tuple(c) for c in record["candidate_locs"])))
            actions = [a.split("-")[0] for a in record["action_list"]]
            label = "ABCD"[[list(c) for c in record["candidate_locs"]].index(record["path_locs"][-1])]
            out.append((task.from_layout(layout, tuple(record["path_locs"][0]), candidates, actions=actions,
                                         meta={"source": f"mvot/maze/path_{record['path_id']}"}), label))
    elif family == "frozenlake":
        task = tasks.get("frozenlake-mcq-v1")
        for level in sorted((directory / "frozenlake").glob("level*/data.json")):
            for record in json.loads(level.read_text()).values():
                n = int(len(record["env_desc"]) ** 0.5)
                rows = [record["env_desc"][i * n:(i + 1) * n] for i in range(n)]
                for k, (actions, extra, state) in enumerate(zip(record["actions"], record["additional_actions"],
                                                                  record["exec_states"])):
                    names = [MVOT_LAKE_ACTIONS[a] for a in actions + extra]
                    out.append((task.from_layout(rows, names, meta={"source": f"mvot/{level.parent.name}/{k}"}),
                                MVOT_OUTCOMES[state]))
    else:
        raise ValueError(f"MVoT released no {family} samples")
    for problem, label in out:
        if problem.answer != label:
            raise AssertionError(f"{problem.meta['source']}: MVoT says {label}, the task {problem.answer}")
    return [problem for problem, _ in out]


def _table(problems, correct) -> dict:
    by_size, by_bin = {}, {}
    for p, ok in zip(problems, correct):
        by_size.setdefault(int(p.meta["size"]), []).append(ok)
        by_bin.setdefault(length_bin(len(p.actions) if p.actions else p.meta["path_length"]), []).append(ok)
    return {"all": rate(correct).to_json(), "by_size": {k: rate(v).to_json() for k, v in sorted(by_size.items())},
            "by_length": {k: rate(by_bin[k]).to_json() for k in _bin_names() if k in by_bin}}


def _bin_names() -> list[str]:
    return [length_bin(low) for low, _ in LENGTH_BINS]


def _cell(v: dict) -> str:
    return f"{100 * v['value']:.1f} [{100 * v['low']:.1f}, {100 * v['high']:.1f}] (n={v['n']})"


def main() -> None:
    import vot
    from vot.bundle import resolve
    from vot.reasoner import greedy_correct

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, choices=sorted(SOURCES))
    parser.add_argument("--bundle", required=True, help="a bundle name or directory")
    parser.add_argument("--count", type=int, default=100, help="problems per size, for each source")
    parser.add_argument("--sizes", default=None, help="comma-separated (default: the task's in and out of distribution)")
    parser.add_argument("--seed", type=int, default=2026, help="the independent source's seed")
    parser.add_argument("--task-id", default=None, help="another version of the family's task (e.g. maze-nav-v0)")
    parser.add_argument("--sketcher", default="default", help="default (the bundle's), oracle, or a sketcher directory")
    parser.add_argument("--max-steps", type=int, default=None, help="thoughts per chain (default: the bundle's)")
    parser.add_argument("--mvot", type=Path, default=None,
                        help="MVoT's unzipped data_samples directory: also run its released maze or lake samples")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--card", action="store_true",
                        help="also write independent_check.json beside the bundle's README.md and append the table to it")
    args = parser.parse_args()
    task = tasks.get(args.task_id or SOURCES[args.task][0])
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else list(task.in_distribution + task.out_of_distribution)
    began = time.perf_counter()
    independent = independent_problems(args.task, sizes, args.count, args.seed, task.id)
    split = [p for size in sizes for p in generate_split(task, "test", size, args.count, 0)]
    if task.kind == "mcq":
        answers = {str(k): int(v) for k, v in zip(*np.unique([p.answer for p in independent], return_counts=True))}
    else:
        answers = {"mean plan length": round(float(np.mean([p.meta["path_length"] for p in independent])), 1)}
    print(f"{len(independent)} independent {task.id} problems ({answers}); {len(split)} v1 test problems")
    reasoner = vot.load(args.bundle, task=task.id, sketcher=args.sketcher, max_steps=args.max_steps)
    result = {"task": task.id, "bundle": str(args.bundle), "count": args.count, "sizes": sizes}
    for name, problems in (("independent", independent), ("v1_test", split)):
        correct = greedy_correct(reasoner, problems)
        result[name] = _table(problems, correct)
        inside = [ok for p, ok in zip(problems, correct) if p.meta["size"] in task.in_distribution]
        result[name]["in_distribution"] = rate(inside).to_json()
        result[name]["in_distribution_by_length"] = _table(
            [p for p in problems if p.meta["size"] in task.in_distribution], inside)["by_length"]
        print(f"{name}: in distribution {_cell(result[name]['in_distribution'])}")
        print("  by size: " + "; ".join(f"{k}: {_cell(v)}" for k, v in result[name]["by_size"].items()))
        print("  by length (in distribution): "
              + "; ".join(f"{k}: {_cell(v)}" for k, v in result[name]["in_distribution_by_length"].items()))
    if args.mvot is not None:
        released = mvot_problems(args.mvot, args.task)
        correct = greedy_correct(reasoner, released)
        result["mvot_samples"] = {"all": rate(correct).to_json(),
                                  "wrong": [p.meta["source"] for p, ok in zip(released, correct) if not ok]}
        print(f"MVoT's released samples: {sum(correct)} of {len(correct)} right; wrong: {result['mvot_samples']['wrong']}")
    gap = 100 * (result["independent"]["in_distribution"]["value"] - result["v1_test"]["in_distribution"]["value"])
    result["gap_points"] = round(gap, 2)
    result["seconds"] = round(time.perf_counter() - began, 1)
    print(f"independent minus v1 test, in distribution: {gap:+.1f} points ({result['seconds']:.0f} s)")
    result["command"] = "python benchmarks/independent_check.py " + " ".join(a for a in sys.argv[1:] if a != "--card")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if args.card:
        write_card_section(Path(str(resolve(args.bundle))), result)


def write_card_section(bundle: Path, result: dict) -> None:
    """``independent_check.json`` beside the card and a section with its table in ``README.md``."""
    (bundle / "independent_check.json").write_text(json.dumps(result, indent=2))
    sizes = list(result["independent"]["by_size"])
    bins = list(result["v1_test"]["in_distribution_by_length"])
    rows = ["| problems | in distribution | " + " | ".join(f"size {s}" for s in sizes) + " | "
            + " | ".join(f"{b} actions (in dist.)" for b in bins) + " |", "|---|" + "---|" * (1 + len(sizes) + len(bins))]
    for name, label in (("v1_test", "v1 test split"), ("independent", "independent source")):
        r = result[name]
        rows.append(f"| {label} | {_short(r['in_distribution'])} | " + " | ".join(_short(r["by_size"][s]) for s in sizes)
                    + " | " + " | ".join(_short(r["in_distribution_by_length"][b]) if b in r["in_distribution_by_length"]
                                         else "-" for b in bins) + " |")
    mvot = result.get("mvot_samples")
    extra = (f"\nMVoT's released samples: {round(mvot['all']['value'] * mvot['all']['n'])} of {mvot['all']['n']} right.\n"
             if mvot else "")
    card = bundle / "README.md"
    card.write_text(card.read_text().rstrip() + f"""

## Evaluation (greedy, shipped sketcher, {result['count']} problems per size and source)

`{result['command']}`: the v1 test split and problems from a source that shares no code with the task
generators (`benchmarks/independent_check.py`). Accuracy, % [Wilson 95%]:

{chr(10).join(rows)}

Independent minus test split, in distribution: {result['gap_points']:+.1f} points.{extra}
""")


def _short(v: dict) -> str:
    return f"{100 * v['value']:.1f} [{100 * v['low']:.1f}, {100 * v['high']:.1f}]"


if __name__ == "__main__":
    main()
