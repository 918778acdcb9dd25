"""HFPolicy: incremental decoding (per-chain KV cache) against the batched re-prefill, on the tiny
random LLaVA of tests/test_hf_policy.py (CPU). Per think: seconds and prompt tokens the model reads,
by step, for chains of ``--steps`` thoughts; both paths must give the same thoughts.

    python benchmarks/hf_incremental.py --steps 16 --chains 4
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from imagegen.base import OracleSketcher  # noqa: E402
from test_hf_policy import TASK, _problems, _save_checkpoint  # noqa: E402
from vot.hf_policy import HFPolicy  # noqa: E402


def run(policy, problems, steps):
    """Per step: (seconds, tokens fed to the model) summed over the chains; and the thoughts."""
    fed = []

    def count(module, args, kwargs):
        ids = kwargs.get("input_ids")
        fed.append(0 if ids is None else ids.numel())

    hook = policy.model.register_forward_pre_hook(count, with_kwargs=True)
    sketcher = OracleSketcher(TASK)
    contexts = policy.begin(problems, list(range(len(problems))), greedy=True)
    images = [p.image for p in problems]
    rows = []
    for _ in range(steps):
        fed.clear()
        began = time.perf_counter()
        thoughts = policy.think(contexts)
        rows.append((time.perf_counter() - began, sum(fed)))
        images = sketcher.sketch(images, ["Go right." for _ in thoughts])  # a fixed action keeps both paths aligned
        policy.observe(contexts, images)
    hook.remove()
    return rows, [c.messages for c in contexts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--chains", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    checkpoint = _save_checkpoint(Path(tempfile.mkdtemp()))
    problems = _problems(args.chains)
    results = {}
    for name, incremental in (("incremental", True), ("re-prefill", False)):
        results[name] = run(HFPolicy(checkpoint, max_new_tokens=6, incremental=incremental), problems, args.steps)
    same = results["incremental"][1] == results["re-prefill"][1]
    print(f"{args.chains} chains, {args.steps} thoughts each, 1 thread; same thoughts: {same}")
    print("| step | incremental s | re-prefill s | tokens fed, incremental | tokens fed, re-prefill |")
    print("|---|---|---|---|---|")
    for k, ((ti, ni), (tr, nr)) in enumerate(zip(results["incremental"][0], results["re-prefill"][0]), start=1):
        if k in (1, 2, 4, 8, 16, 32) or k == args.steps:
            print(f"| {k} | {ti:.3f} | {tr:.3f} | {ni} | {nr} |")
    total_i = sum(t for t, _ in results["incremental"][0])
    total_r = sum(t for t, _ in results["re-prefill"][0])
    print(f"total: incremental {total_i:.2f} s, re-prefill {total_r:.2f} s ({total_r / total_i:.2f}x)")


if __name__ == "__main__":
    main()
