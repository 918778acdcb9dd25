"""Throughput of the reasoning loop against batch size, and of the decoder alone.

    python benchmarks/throughput.py [--bundle maze] [--sizes 5,8] [--batches 1,8,64,256]
                                    [--sketchers oracle,default] [--device cpu] [--out FILE.json]

Full loop: ``Reasoner.run`` of the shipped bundle, greedy, one chain per problem, ``batch`` problems
advanced together (``--samples N``: N sampled chains per problem, as best-of-N runs them, and
``batch / N`` problems together); chains/s and policy tokens/s over ``max(batch, --min-chains)``
chains (batches run one after another). Decoder alone: ``policy.think`` once over ``batch`` freshly begun contexts,
forced to write ``--new-tokens`` tokens each, and on the same decoder with a prompt of the same mean
length, HF ``generate`` with a dynamic and a static cache (prefill time subtracted): once on prompts of
the contexts' own lengths, left-padded to the longest as a ragged batch must be, and with
``--mean-length`` also with every prompt at their mean length (no padding: the comparison before session 20).
``generate`` runs transformers' stock ``sdpa`` attention; where the engine has its own decode attention
(`vot.lm.attention`), HF's static cache is also timed with it (``generate_static_vot_attention``).

Only the public API is used (``vot.load``, ``Reasoner.run``, ``policy.begin/think``), so the same
script times an older checkout: ``PYTHONPATH=/path/to/old/checkout python benchmarks/throughput.py``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings

import numpy as np
import torch


def _problems(task, size, count, seed=0):
    rng = np.random.default_rng([seed, size])
    return [task.generate(rng, size=size) for _ in range(count)]


def loop_rate(reasoner, problems, batch, samples=1):
    """(chains/s, tokens/s): greedy chains, ``batch`` at a time; with ``samples`` > 1, that many
    sampled chains per problem (best-of-N's chains), ``batch // samples`` problems at a time."""
    began, tokens, chains = time.perf_counter(), 0, 0
    step = max(batch // samples, 1)
    for start in range(0, len(problems), step):
        for group in reasoner.run(problems[start:start + step], n=samples, greedy=samples == 1):
            tokens += sum(chain.compute.policy_tokens for chain in group)
            chains += len(group)
    seconds = time.perf_counter() - began
    return chains / seconds, tokens / seconds


def decode_rate(policy, problems, new):
    """(decode tokens/s, mean context length): one ``think`` over freshly begun contexts, with the
    end tokens banned so that every row writes exactly ``new`` tokens (``new - 1`` decoder steps:
    the first token comes from the prefill's logits)."""
    saved = policy._banned, policy.max_thought_tokens
    tok = policy.tokenizer
    policy._banned = torch.cat([saved[0], torch.tensor([tok.eot, tok.eos])])
    policy.max_thought_tokens = new
    try:
        contexts = policy.begin(problems, [0] * len(problems), greedy=True)
        lengths = [int(getattr(c, "length", 0)) for c in contexts]  # cached positions (both engines' contexts have it)
        began = time.perf_counter()
        thoughts = policy.think(contexts)
        seconds = time.perf_counter() - began
    finally:
        policy._banned, policy.max_thought_tokens = saved
    assert all(len(t.logprobs) == new for t in thoughts)
    return len(problems) * (new - 1) / seconds, lengths


def generate_rate(decoder, lengths, new, cache, attention="sdpa"):
    """Decode tokens/s of HF ``generate`` after random prompts of the given per-row ``lengths``
    (left-padded to the longest, as a ragged batch must be; equal lengths: no padding): the time of
    writing ``new`` tokens less that of writing 1 (the prefill), over ``new - 1`` decoder steps.
    ``attention``: the decoder's attention implementation for the timing (stock ``sdpa``, or the
    engine's ``vot_decode``), restored afterwards."""
    saved = decoder.config._attn_implementation
    decoder.config._attn_implementation = attention
    try:
        return _generate_rate(decoder, lengths, new, cache)
    finally:
        decoder.config._attn_implementation = saved


def _generate_rate(decoder, lengths, new, cache):
    batch, width = len(lengths), max(lengths)
    ids = torch.randint(10, decoder.config.vocab_size, (batch, width), device=decoder.device)
    mask = (torch.arange(width, device=decoder.device)[None] >= width - torch.tensor(lengths, device=decoder.device)[:, None]).long()

    def timed(count):
        kwargs = dict(max_new_tokens=count, min_new_tokens=count, do_sample=False,
                      pad_token_id=decoder.config.pad_token_id)
        if cache == "static":
            kwargs["cache_implementation"] = "static"
        began = time.perf_counter()
        decoder.generate(ids, attention_mask=mask, **kwargs)
        return time.perf_counter() - began

    timed(2)  # warm-up
    return batch * (new - 1) / max(timed(new) - timed(1), 1e-9)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", default="maze")
    parser.add_argument("--sizes", default="5,8")
    parser.add_argument("--batches", default="1,8,64,256")
    parser.add_argument("--sketchers", default="oracle,default")
    parser.add_argument("--min-chains", type=int, default=16, help="chains timed per point at least")
    parser.add_argument("--samples", type=int, default=1,
                        help="chains per problem in the full loop (> 1: sampled, as best-of-N runs them; a batch counts chains)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    parser.add_argument("--new-tokens", type=int, default=32, help="tokens per row in the decoder-alone timing")
    parser.add_argument("--skip-generate", action="store_true")
    parser.add_argument("--decode-only", action="store_true", help="skip the full-loop timings")
    parser.add_argument("--mean-length", action="store_true",
                        help="also time generate with every prompt at the contexts' mean length (no padding)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.samples < 1:
        parser.error(f"--samples must be at least 1, got {args.samples}")
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    import tasks
    import vot

    sizes = [int(s) for s in args.sizes.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    record = {"machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                         f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}",
              "date": time.strftime("%Y-%m-%d"), "engine": os.environ.get("PYTHONPATH", "this checkout"),
              "loop": [], "decode": []}
    for sketcher in [] if args.decode_only else args.sketchers.split(","):
        reasoner = vot.load(args.bundle, sketcher=sketcher, device=args.device)
        task = tasks.get(reasoner.policy.model.spec.task)
        for size in sizes:
            for batch in batches:
                problems = _problems(task, size, -(-max(batch, args.min_chains) // args.samples))
                reasoner.run(problems[:1], n=1, greedy=True)  # warm-up
                chains, tokens = loop_rate(reasoner, problems, batch, args.samples)
                row = dict(sketcher=sketcher, size=size, batch=batch, samples=args.samples, chains=len(problems) * args.samples,
                           chains_per_s=round(chains, 2), tokens_per_s=round(tokens, 1))
                record["loop"].append(row)
                print(json.dumps(row), flush=True)
    policy = vot.load(args.bundle, sketcher="oracle", device=args.device).policy
    own_attention = policy.model.decoder.config._attn_implementation
    own_attention = None if own_attention == "sdpa" else own_attention  # an older engine: stock sdpa
    record["decode_attention"] = own_attention or "sdpa"  # what the engine's decode steps ran (vot_decode: sdpa except 1-query CPU calls)
    task = tasks.get(policy.model.spec.task)
    for size in sizes:
        for batch in batches:
            problems = _problems(task, size, batch, seed=1)
            decode_rate(policy, problems, 4)  # warm-up at the same batch: the engine keeps its cache and scratch memory
            # between sets of chains, as in a run; HF generate's allocation falls in the prefill it subtracts
            ours, lengths = decode_rate(policy, problems, args.new_tokens)
            length = int(np.mean(lengths))
            row = dict(size=size, batch=batch, context=length, longest=max(lengths), new_tokens=args.new_tokens,
                       engine_tokens_per_s=round(ours, 1))
            if not args.skip_generate:  # the same ragged contexts (left-padded), and as many of their mean length
                for cache in ("dynamic", "static"):
                    row[f"generate_{cache}_tokens_per_s"] = round(
                        generate_rate(policy.model.decoder, lengths, args.new_tokens, cache), 1)
                    if cache == "static" and own_attention:  # HF's static cache with the engine's decode attention
                        row["generate_static_vot_attention_tokens_per_s"] = round(
                            generate_rate(policy.model.decoder, lengths, args.new_tokens, cache, own_attention), 1)
                    if args.mean_length:
                        row[f"generate_{cache}_mean_length_tokens_per_s"] = round(
                            generate_rate(policy.model.decoder, [length] * batch, args.new_tokens, cache), 1)
            record["decode"].append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(record, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
