"""Greedy chains of the shipped bundles, written out so that two engines can be compared.

    PYTHONPATH=/path/to/old/checkout python benchmarks/engine_parity.py --out old.jsonl
    python benchmarks/engine_parity.py --out new.jsonl --compare old.jsonl

For each shipped bundle: ``--count`` test-split problems over its in- and out-of-distribution
sizes, one greedy chain each (the bundle's own sketcher, batch ``--batch``). Each line holds the
problem id, the thoughts and the answer. ``--compare`` reports how many chains are identical,
and the first difference of each that is not.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings


def chains(bundle: str, count: int, batch: int, sketcher: str | None):
    import tasks
    import vot
    from tasks.splits import generate_split

    reasoner = vot.load(bundle, **({} if sketcher is None else {"sketcher": sketcher}))  # None: the bundle's own
    task = tasks.get(reasoner.policy.model.spec.task)
    sizes = list(task.in_distribution) + list(task.out_of_distribution)
    per_size = -(-count // len(sizes))
    problems = [p for size in sizes for p in generate_split(task, "test", size, per_size, 0)][:count]
    for start in range(0, len(problems), batch):
        for group in reasoner.run(problems[start:start + batch], n=1, greedy=True):
            chain = group[0]
            yield {"bundle": bundle, "problem": chain.problem_id, "thoughts": [s.thought for s in chain.steps],
                   "answer": chain.answer}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundles", default="maze-mcq,frozenlake-mcq,minibehavior-mcq,frozenlake-nav")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--sketcher", default=None, help="override the bundles' sketcher (e.g. oracle)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--compare", default=None)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    rows = []
    with open(args.out, "w") as f:
        for bundle in args.bundles.split(","):
            for row in chains(bundle, args.count, args.batch, args.sketcher):
                rows.append(row)
                f.write(json.dumps(row) + "\n")
    if not args.compare:
        return 0
    with open(args.compare) as f:
        reference = {(r["bundle"], r["problem"]): r for r in map(json.loads, f)}
    by_bundle: dict[str, list[int]] = {}
    for row in rows:
        other = reference.get((row["bundle"], row["problem"]))
        same = other is not None and other["thoughts"] == row["thoughts"] and other["answer"] == row["answer"]
        tally = by_bundle.setdefault(row["bundle"], [0, 0])
        tally[0] += same
        tally[1] += 1
        if not same and other is not None:
            step = next((i for i, (a, b) in enumerate(zip(row["thoughts"], other["thoughts"])) if a != b),
                        min(len(row["thoughts"]), len(other["thoughts"])))
            print(f"differs: {row['problem']} at step {step + 1}: {row['thoughts'][step:step + 1]} "
                  f"vs {other['thoughts'][step:step + 1]}")
    for bundle, (same, total) in by_bundle.items():
        print(f"{bundle}: {same}/{total} greedy chains identical")
    return 0 if all(s == t for s, t in by_bundle.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
