"""Markdown tables from `benchmarks/throughput.py` records, this engine against a reference one.

    python benchmarks/throughput_table.py NEW.json [--reference OLD.json]
"""
from __future__ import annotations

import argparse
import json
import sys


def _index(rows, *keys):
    return {tuple(r[k] for k in keys): r for r in rows}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("new")
    parser.add_argument("--reference", default=None)
    args = parser.parse_args(argv)
    new = json.load(open(args.new))
    old = json.load(open(args.reference)) if args.reference else {"loop": [], "decode": []}
    print(f"machine: {new['machine']}; date {new['date']}\n")
    print("| sketcher | maze size | batch | chains/s | × batch 1 | tokens/s | reference chains/s | × reference |")
    print("|---|---|---|---|---|---|---|---|")
    reference = _index(old["loop"], "sketcher", "size", "batch")
    firsts = {(r["sketcher"], r["size"]): r["chains_per_s"] for r in new["loop"] if r["batch"] == 1}
    for row in new["loop"]:
        ref = reference.get((row["sketcher"], row["size"], row["batch"]))
        first = firsts.get((row["sketcher"], row["size"]))
        print(f"| {row['sketcher']} | {row['size']} | {row['batch']} | {row['chains_per_s']:.1f} | "
              f"{row['chains_per_s'] / first:.1f} | {row['tokens_per_s']:.0f} | "
              f"{ref['chains_per_s']:.1f} | {row['chains_per_s'] / ref['chains_per_s']:.1f} |" if ref and first else
              f"| {row['sketcher']} | {row['size']} | {row['batch']} | {row['chains_per_s']:.1f} | | {row['tokens_per_s']:.0f} | | |")
    print("\n| maze size | batch | context | engine decode tok/s | reference engine | HF generate dynamic | HF generate static | engine / static |")
    print("|---|---|---|---|---|---|---|---|")
    reference = _index(old["decode"], "size", "batch")
    for row in new["decode"]:
        ref = reference.get((row["size"], row["batch"]))
        static = row.get("generate_static_tokens_per_s")
        print(f"| {row['size']} | {row['batch']} | {row['context']} | {row['engine_tokens_per_s']:.0f} | "
              f"{ref['engine_tokens_per_s']:.0f} | " if ref else f"| {row['size']} | {row['batch']} | {row['context']} | "
              f"{row['engine_tokens_per_s']:.0f} | | ", end="")
        print(f"{row.get('generate_dynamic_tokens_per_s', 0):.0f} | {static or 0:.0f} | "
              f"{row['engine_tokens_per_s'] / static if static else float('nan'):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
