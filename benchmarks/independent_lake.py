"""frozenlake-mcq on problems the project's generator never made, built through the public API.

Maps: holes at random with density 0.2 to 0.35, S and G anywhere (kept only when G is reachable),
drawn here, not by `tasks`. Action sequences: uniform random walks of 1 to 4n actions, so they bump
walls, revisit tiles, return to S and go on after the episode ended, as MVoT's data does. Labels: this
script's own simulator, checked against the task's answer for every problem. Then the shipped bundle
runs greedy and the test-time strategies with the consistency verifier; pass@N is the oracle ceiling.

    python benchmarks/independent_lake.py --count 20 --n 4 [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tasks  # noqa: E402
from tasks.metrics import rate  # noqa: E402

MOVES = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}


def _reachable(rows, start, goal) -> bool:
    n, seen, todo = len(rows), {start}, [start]
    while todo:
        r, c = todo.pop()
        for dr, dc in MOVES.values():
            nr, nc = r + dr, c + dc
            if 0 <= nr < n and 0 <= nc < n and (nr, nc) not in seen and rows[nr][nc] != "H":
                seen.add((nr, nc))
                todo.append((nr, nc))
    return goal in seen


def random_map(rng: np.random.Generator, n: int) -> list[str]:
    while True:
        cells = rng.random((n, n)) < rng.uniform(0.2, 0.35)
        grid = [["H" if h else "F" for h in row] for row in cells]
        s, g = rng.choice(n * n, size=2, replace=False)
        (sr, sc), (gr, gc) = divmod(int(s), n), divmod(int(g), n)
        grid[sr][sc], grid[gr][gc] = "S", "G"
        rows = ["".join(row) for row in grid]
        if _reachable(rows, (sr, sc), (gr, gc)):
            return rows


def simulate(rows: list[str], actions: list[str]) -> str:
    """A: reached the goal, B: fell in a hole, C: neither (moves off the map do nothing)."""
    n = len(rows)
    r, c = next((i, row.index("S")) for i, row in enumerate(rows) if "S" in row)
    for action in actions:
        dr, dc = MOVES[action]
        if 0 <= r + dr < n and 0 <= c + dc < n:
            r, c = r + dr, c + dc
        if rows[r][c] == "H":
            return "B"
        if rows[r][c] == "G":
            return "A"
    return "C"


def problems(count: int, seed: int = 12345) -> list:
    lake = tasks.get("frozenlake-mcq")
    rng = np.random.default_rng(seed)
    out = []
    for n in range(3, 9):
        for _ in range(count):
            rows = random_map(rng, n)
            actions = [str(a) for a in rng.choice(list(MOVES), size=int(rng.integers(1, 4 * n + 1)))]
            problem = lake.from_layout(rows, actions, meta={"source": "independent_lake"})
            label = simulate(rows, actions)
            if problem.answer != label:
                raise AssertionError(f"simulators disagree on {rows} {actions}: task {problem.answer}, here {label}")
            out.append(problem)
    return out


def main() -> None:
    import vot
    from vot.strategies import run_strategy
    from vot.verifiers import ConsistencyVerifier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20, help="problems per size 3-8")
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    probs = problems(args.count)
    lake = tasks.get("frozenlake-mcq")
    print(f"{len(probs)} problems; answers {dict(zip(*np.unique([p.answer for p in probs], return_counts=True)))}")
    rows = {}
    pool = vot.load("frozenlake").run(probs, args.n)
    right = [[c.answer is not None and lake.check(p, c.answer).correct for c in cs] for p, cs in zip(probs, pool)]
    rows[f"pass@{args.n} (oracle)"] = rate(any(r) for r in right)
    for name, settings in [("greedy", {}), ("best_of_n", {"n": args.n}), ("self_consistency", {"n": args.n}),
                           ("refine", {"n": args.n}), ("compute_optimal", {"n": args.n})]:
        results = run_strategy(name, probs, vot.load("frozenlake"), ConsistencyVerifier(), **settings)
        group = f"{name}@{settings.get('n', 1)}"
        rows[group] = rate(r.answer is not None and lake.check(p, r.answer).correct for p, r in zip(probs, results))
        by_size = {n: rate(r.answer is not None and lake.check(p, r.answer).correct for p, r in zip(probs, results)
                           if p.meta["size"] == n) for n in range(3, 9)}
        print(f"{group}: {rows[group]}  by size "
              + ", ".join(f"{n}: {100 * v.value:.0f}" for n, v in by_size.items()))
    oracle = f"pass@{args.n} (oracle)"
    print(f"{oracle}: {rows[oracle]}")
    if args.json:
        args.json.write_text(json.dumps({k: v.to_json() for k, v in rows.items()}, indent=2))


if __name__ == "__main__":
    main()
