"""What the engine can use on this machine: dtype, attention kernels, xformers, torch.compile.

    python benchmarks/gpu_probe.py [--device cuda] [--out probe.json]

Each probe runs the shipped maze policy's decoder (or the sketcher's UNet) once and records
whether it worked, its error if not, and a timing where that means something:
- bf16: the policy loaded in bf16 writes the same greedy first thought as in fp32 on a few problems;
- sdpa: which scaled-dot-product kernels accept the decode step's shapes (flash, memory-efficient, math);
- xformers: whether it imports and the sketcher accepts it (`imagegen.attention`);
- compile: ``torch.compile(mode="reduce-overhead")`` (``default`` off CUDA) of one fixed-shape decode step (a static
  batch of rows and a fixed attended length), its speed against eager; falls back on any error.
Runs on CPU too (``--device cpu``), where the CUDA-only probes say so.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
import warnings

import numpy as np
import torch


def _timed(fn, repeat=20):
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    began = time.perf_counter()
    for _ in range(repeat):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - began) / repeat


def probe(name, fn, record):
    try:
        record[name] = {"ok": True, **(fn() or {})}
    except Exception as error:  # a probe that fails is a result, not a crash
        record[name] = {"ok": False, "error": f"{type(error).__name__}: {error}".splitlines()[0][:300]}
        traceback.print_exc(limit=2)
    print(name, json.dumps(record[name]), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    import tasks
    import vot

    device = torch.device(args.device)
    record = {"device": str(device), "torch": torch.__version__,
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
    task = tasks.get("maze-mcq-v0")
    problems = [task.generate(np.random.default_rng(i), size=5 + i % 2) for i in range(8)]

    def bf16():
        cpu = vot.load("maze", sketcher="oracle").policy
        fast = vot.load("maze", sketcher="oracle", device=args.device).policy
        a = [t.text for t in cpu.think(cpu.begin(problems, [0] * len(problems), greedy=True))]
        b = [t.text for t in fast.think(fast.begin(problems, [0] * len(problems), greedy=True))]
        return {"dtype": str(fast.model.segments.weight.dtype), "same_first_thoughts": sum(x == y for x, y in zip(a, b)),
                "of": len(a)}

    def sdpa():
        from torch.nn.attention import SDPBackend, sdpa_kernel

        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        q = torch.randn(args.batch, 4, 1, 32, device=device, dtype=dtype)
        k = torch.randn(args.batch, 4, 1024, 32, device=device, dtype=dtype)
        mask = torch.zeros(args.batch, 1, 1, 1024, device=device, dtype=dtype)
        out = {}
        for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH):
            try:
                with sdpa_kernel(backend):
                    seconds = _timed(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, k, attn_mask=mask))
                out[backend.name] = f"{seconds * 1e6:.0f} us"
            except Exception as error:
                out[backend.name] = f"refused: {type(error).__name__}"
        return out

    def xformers():
        import xformers

        from imagegen.attention import configure_attention, xformers_works

        sketcher = vot.load("maze", device=args.device).sketcher
        return {"version": xformers.__version__, "forward_works": xformers_works(),
                "sketcher_backend": configure_attention(sketcher.unet)}

    def compile_decode():
        mode = "reduce-overhead" if device.type == "cuda" else "default"  # CUDA graphs need CUDA
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        policy = vot.load("maze", sketcher="oracle", device=args.device).policy
        decoder = policy.model.decoder
        batch, span, width = args.batch, 1024, decoder.config.hidden_size
        config = decoder.config
        embeds = torch.randn(batch, 1, width, device=device, dtype=dtype)
        positions = torch.full((batch, 1), span // 2, device=device)
        mask = torch.zeros(batch, 1, 1, span, device=device, dtype=dtype)
        mask[..., span // 2 + 1:] = torch.finfo(dtype).min
        from transformers import StaticCache

        cache = StaticCache(config=config, max_cache_len=span)  # fixed shapes: the form CUDA graphs need

        def step():
            return decoder(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, cache=cache,
                           use_cache=True).logits

        with torch.no_grad():
            eager = _timed(step)
            compiled_fn = torch.compile(step, mode=mode)
            began = time.perf_counter()
            compiled_fn()
            compile_seconds = time.perf_counter() - began
            compiled = _timed(compiled_fn)
        return {"mode": mode, "eager_ms": round(eager * 1e3, 3), "compiled_ms": round(compiled * 1e3, 3),
                "compile_s": round(compile_seconds, 1), "speedup": round(eager / compiled, 2)}

    probe("bf16", bf16, record)
    probe("sdpa", sdpa, record)
    probe("xformers", xformers, record)
    probe("compile_decode", compile_decode, record)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(record, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
