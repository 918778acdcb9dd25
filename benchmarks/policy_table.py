"""Does imagining help? direct / text CoT / VoT with its own sketches / VoT with oracle sketches.

    python benchmarks/policy_table.py --task maze-mcq-v0 \
        --policy direct=checkpoints/policy-maze-mcq-v0-direct-tiny \
        --policy cot=checkpoints/policy-maze-mcq-v0-cot-tiny \
        --policy vot=vot/pretrained/maze-mcq-v0 \
        [--count 100] [--pool-count 25] [--n 4,16] [--verifier confidence] [--out FILE.json]

For every policy (a ``vot`` policy runs twice: with the trained sketcher and with `OracleSketcher`)
it runs ``vot bench`` on the canonical test problems: greedy decoding (N=1) on ``--count`` problems
per size, and best-of-N with a non-oracle selector read off one pool of max(N) sampled chains on
``--pool-count`` problems per size (in-distribution sizes only). Prints a markdown table with Wilson
95% intervals and writes every number (and the run directories) to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import tasks
from tasks.metrics import rate
from vot.bench import BenchConfig, run_bench
from vot.run import read_run


def _pooled(summary: dict, group: str, sizes: list[int]) -> dict:
    by_size = summary["metrics"][group]["by_size"]
    correct = []
    for size in sizes:
        cell = by_size[str(size)]
        hits = round(cell["value"] * cell["n"])
        correct += [True] * hits + [False] * (cell["n"] - hits)
    return rate(correct).to_json()


def _greedy_on_pool_problems(greedy_dir: Path, pool_dir: Path) -> dict:
    """Greedy accuracy on exactly the problems the pool was sampled on (the first ``--pool-count`` of
    each size), so best-of-N is compared with N=1 on the same problems, not on the larger greedy set."""
    def outcomes(run: Path, strategy: str) -> dict[str, bool]:
        return {r.problem_id: r.correct for r in read_run(run).records if r.strategy == strategy}

    greedy = outcomes(greedy_dir, "greedy")
    pool = outcomes(pool_dir, "pool")
    missing = sorted(set(pool) - set(greedy))
    if missing:
        raise ValueError(f"{greedy_dir} has no greedy result for pool problems {missing[:3]}: is --count < --pool-count?")
    return rate([greedy[problem] for problem in sorted(pool)]).to_json()


def _cell(value: dict) -> str:
    return f"{100 * value['value']:.1f} [{100 * value['low']:.1f}, {100 * value['high']:.1f}]"


def run_rows(task: tasks.Task, policies: dict[str, str], args) -> list[dict]:
    rows = []
    runs = Path(args.runs)
    for name, path in policies.items():
        sketchers = ["default", "oracle"] if name.startswith("vot") else ["blank"]
        for sketcher in sketchers:
            label = name if sketcher != "oracle" else f"{name} + oracle sketches"
            started = time.perf_counter()
            greedy_dir, pool_dir = runs / f"{task.id}-{name}-{sketcher}-greedy", runs / f"{task.id}-{name}-{sketcher}-pool"
            greedy = run_bench(BenchConfig(
                task=task.id, policy=path, sketcher=sketcher, strategies=["greedy"], n=[1], verifier=args.verifier,
                sizes=list(task.in_distribution + task.out_of_distribution), count=args.count, seed=args.seed,
                out=str(greedy_dir), resume=True), progress=False)
            pooled = run_bench(BenchConfig(
                task=task.id, policy=path, sketcher=sketcher, strategies=["best_of_n", "self_consistency"],
                n=args.n, verifier=args.verifier, sizes=list(task.in_distribution), count=args.pool_count,
                seed=args.seed, out=str(pool_dir), resume=True), progress=False)
            row = {"policy": label, "path": path, "sketcher": sketcher,
                   "greedy_in_distribution": _pooled(greedy, "greedy@1", list(task.in_distribution)),
                   "greedy_out_of_distribution": _pooled(greedy, "greedy@1", list(task.out_of_distribution)),
                   "greedy_on_pool_problems": _greedy_on_pool_problems(greedy_dir, pool_dir),
                   "greedy_by_size": greedy["metrics"]["greedy@1"]["by_size"],
                   "mean_sketches": greedy["metrics"]["greedy@1"]["mean_compute"]["sketches"],
                   "seconds": round(time.perf_counter() - started, 1)}
            for n in args.n:
                row[f"best_of_{n}"] = pooled["metrics"][f"best_of_n@{n}"]["accuracy"]
                row[f"maj_{n}"] = pooled["metrics"][f"self_consistency@{n}"]["accuracy"]
            row["pass_at_max"] = pooled["curves"]["pass@k/oracle"][str(max(args.n))]
            rows.append(row)
            print(f"  {label}: {row['seconds']} s", flush=True)
    return rows


def markdown(task: tasks.Task, rows: list[dict], args) -> str:
    ns = args.n
    head = (f"| {task.id} | N=1 sizes {min(task.in_distribution)}-{max(task.in_distribution)} | N=1 OOD "
            f"{min(task.out_of_distribution)}-{max(task.out_of_distribution)} | N=1 on the pool's problems | "
            + " | ".join(f"best-of-{n} ({args.verifier})" for n in ns) + " | "
            + " | ".join(f"maj@{n}" for n in ns) + f" | oracle pass@{max(ns)} |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in rows:
        cells = [row["policy"], _cell(row["greedy_in_distribution"]), _cell(row["greedy_out_of_distribution"]),
                 _cell(row["greedy_on_pool_problems"])]
        cells += [_cell(row[f"best_of_{n}"]) for n in ns] + [_cell(row[f"maj_{n}"]) for n in ns]
        cells.append(_cell(row["pass_at_max"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", required=True)
    parser.add_argument("--policy", action="append", required=True, help="NAME=PATH (a bundle or policy directory)")
    parser.add_argument("--count", type=int, default=100, help="greedy problems per size")
    parser.add_argument("--pool-count", type=int, default=25, help="best-of-N problems per in-distribution size")
    parser.add_argument("--n", type=lambda s: [int(x) for x in s.split(",")], default=[4, 16])
    parser.add_argument("--verifier", default="confidence")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", default="runs/policy_table")
    parser.add_argument("--out", default=None)
    parser.add_argument("--card", default=None, help="a bundle directory whose README.md (model card) gets the table")
    args = parser.parse_args()
    task = tasks.get(args.task)
    policies = dict(item.split("=", 1) for item in args.policy)
    rows = run_rows(task, policies, args)
    table = markdown(task, rows, args)
    print(table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"task": task.id, "args": vars(args), "rows": rows, "table": table}, indent=2))
    if args.card:
        from vot.lm.card import write_card

        write_card(args.card, {"args": vars(args), "table": table})


if __name__ == "__main__":
    main()
