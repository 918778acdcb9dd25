"""Test-time-compute table from `vot bench` run directories: per size, each strategy@N's accuracy
with its 95% interval, its compute relative to greedy (policy tokens + denoising steps at the cost
measured in the run), and the share of the oracle headroom it recovers,
(selected - greedy) / (pass@N - greedy), where pass@N is read off the run's pool.

    python benchmarks/tts_table.py RUN_DIR [RUN_DIR ...] [--json OUT]

Runs of one task and seed are merged (e.g. one run with the sampling strategies at N = 4, 16 and
another with refine); greedy@1 and the pool's pass@k come from whichever run has them.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks.metrics import rate  # noqa: E402
from vot.bench import CURVE_OF, SAMPLING  # noqa: E402
from vot.run import read_run  # noqa: E402
from vot.scaling import pass_at_k  # noqa: E402


def _groups(run: Path) -> tuple:
    """(group -> problem -> correct, problem -> size, group -> relative compute, pool correctness, summary)."""
    record = read_run(run)
    if record.summary is None:
        raise ValueError(f"{run} has no summary.json (an unfinished run?)")
    summary, records = record.summary, record.records
    sizes = {r.problem_id: r.size for r in records}
    groups: dict[str, dict] = {}
    pools: dict[str, list[bool]] = {}
    for r in records:
        if r.result is not None:
            groups.setdefault(r.group, {})[r.problem_id] = r.result.correct
        elif r.strategy == "pool":
            pools.setdefault(r.problem_id, []).append(r.correct)
    relative = {g: v["relative"] for g, v in summary.get("compute", {}).get("groups", {}).items()}
    return groups, sizes, relative, pools, summary


def _recost(runs_summaries: list[dict], relative: dict) -> dict:
    """Search groups of runs without greedy: their mean token and denoising-step counts priced with
    the cost model of the run that has greedy@1, relative to that greedy (one price for all runs)."""
    base = next((s for s in runs_summaries if "greedy@1" in s["metrics"]), None)
    if base is None:
        return relative
    model = base["compute"]["cost_model"]
    price = lambda m: m["policy_tokens"] * model["seconds_per_token"] + m["denoising_steps"] * model["seconds_per_denoising_step"]
    unit = price(base["metrics"]["greedy@1"]["mean_compute"])
    for summary in runs_summaries:
        if summary is base:
            continue
        for group, metric in summary["metrics"].items():
            if "mean_compute" in metric:
                relative[group] = price(metric["mean_compute"]) / unit
    return relative


def table(runs: list[Path]) -> dict:
    groups, sizes, relative, pools, subsampled, summaries = {}, {}, {}, {}, {}, []
    for run in runs:
        g, s, rel, p, summary = _groups(run)
        summaries.append(summary)
        groups |= g
        sizes |= s
        relative |= rel
        pools |= p
        verifier = summary["selection_verifier"]
        for name in summary["config"]["strategies"]:
            if name in SAMPLING:
                for n in summary["config"]["n"]:
                    per_size = summary["metrics"].get(f"{name}@{n}")
                    if per_size:
                        subsampled[f"{name}@{n}"] = (run, CURVE_OF[name].format(v=verifier), n)
    relative = _recost(summaries, relative)
    out: dict = {}
    for size in sorted(set(sizes.values())) + ["all"]:
        ids = [pid for pid, s in sizes.items() if size == "all" or s == size]
        rows = {}
        for group, by_problem in groups.items():
            rows[group] = rate(by_problem[i] for i in ids if i in by_problem).to_json()
        for group, (run, curve, n) in subsampled.items():
            rows[group] = _curve_by_size(run, curve, n, ids)
        passes = {n: float(np.mean([pass_at_k(len(pools[i]), sum(pools[i]), n) for i in ids if i in pools]))
                  for n in sorted({int(g.rsplit("@", 1)[1]) for g in rows}) if any(i in pools for i in ids)
                  and all(len(pools[i]) >= n for i in ids if i in pools)}
        greedy = rows.get("greedy@1", {}).get("value")
        for group, row in rows.items():
            n = int(group.rsplit("@", 1)[1])
            row["compute"] = relative.get(group)
            head = passes.get(n)
            row["pass@N"] = head
            row["headroom_recovered"] = ((row["value"] - greedy) / (head - greedy)
                                         if greedy is not None and head is not None and head > greedy else None)
        out[str(size)] = rows
    return out


def _curve_by_size(run: Path, curve: str, n: int, ids: list[str]) -> dict:
    """A subsampled curve's accuracy at k = n over the problems ``ids`` (recomputed from the log)."""
    from vot.bench import BenchConfig, _pool_curves  # the bench's own curve code, on a subset
    import tasks

    record = read_run(run)
    config = BenchConfig(**record.config)
    records = [r for r in record.records if r.problem_id in set(ids)]
    point = _pool_curves(records, config, tasks.get(config.task)).get(curve, {}).get(str(n))
    return {"value": point["value"], "low": point["low"], "high": point["high"], "total": point["n"]} if point else {}


def markdown(result: dict) -> str:
    lines = []
    for size, rows in result.items():
        lines += [f"\n**size {size}** (compute: the run-wide mean)\n", "| strategy@N | accuracy [95% CI] | compute (x greedy) | pass@N | headroom recovered |",
                  "|---|---|---|---|---|"]
        for group in sorted(rows, key=lambda g: (int(g.rsplit("@", 1)[1]), g)):
            row = rows[group]
            if not row:
                continue
            compute = f"{row['compute']:.2f}" if row.get("compute") is not None else "–"
            head = f"{100 * row['pass@N']:.1f}%" if row.get("pass@N") is not None else "–"
            recovered = f"{100 * row['headroom_recovered']:.0f}%" if row.get("headroom_recovered") is not None else "–"
            lines.append(f"| {group} | {100 * row['value']:.1f}% [{100 * row['low']:.1f}, {100 * row['high']:.1f}] "
                         f"| {compute} | {head} | {recovered} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = table(args.runs)
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
