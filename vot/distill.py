"""Distil a test-time strategy into the single-pass policy (``vot distill``).

The chains a strategy selects (``self_consistency@16``, ``best_of_n`` with a verifier, ...) on
unlabelled train-split problems become training data for the policy, with a replay of its gold
traces, as in `vot.improve`. The result is a bundle with a card: the lineage, the share of selected
chains that were right (measured after the fact), and on the test split the distilled policy's
greedy accuracy beside the teacher's strategy and greedy, with the compute each spends per problem.

    vot distill --task maze --from maze --strategy self_consistency --n 16 --sizes 7,8 --out runs/distill-maze
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import tasks
from tasks.metrics import rate
from tasks.splits import generate_split


@dataclass
class DistillConfig:
    task: str
    start: str  # the teacher: a bundle (name or directory)
    out: str
    strategy: str = "self_consistency"
    n: int = 16
    verifier: str = "consistency"  # for strategies that score chains
    filter: str = "none"  # a `vot.improve` filter the selected chain must also pass (none: keep every selection)
    sizes: list[int] = field(default_factory=lambda: [7, 8])
    problems_per_size: int = 100
    steps: int = 300
    chain_share: float = 0.5
    gold_problems_per_size: int = 500
    eval_count: int = 25
    eval_sizes: list[int] = field(default_factory=list)  # default: the training sizes and --sizes
    seed: int = 0
    device: str = "auto"
    sketcher: str = "default"
    batch: int = 32
    train_batch: int | None = None  # training batch size (default: the preset's); lower it for long chains
    resume: bool = False  # continue a run in ``out``: sizes already selected are not sampled again


SELECTION_SETTINGS = ("task", "start", "strategy", "n", "verifier", "filter", "sizes", "problems_per_size", "seed",
                      "device", "sketcher")


def _identity(config: DistillConfig | dict) -> dict:
    """The settings that decide the selected chains, which a resumed run must share; the training and
    evaluation settings may change (copy a finished run's directory and resume it with other ``--steps``)."""
    settings = asdict(config) if isinstance(config, DistillConfig) else config
    return {k: settings.get(k, getattr(DistillConfig, k, None)) for k in SELECTION_SETTINGS}  # older runs: defaults


def _strategy_on(config: DistillConfig, reasoner, problems, name: str, n: int):
    from vot.strategies import run_strategy
    from vot.verifiers import get_verifier

    results = []
    for start in range(0, len(problems), config.batch):
        results += run_strategy(name, problems[start:start + config.batch], reasoner, get_verifier(config.verifier),
                                **({} if name == "greedy" else {"n": n}))
    return results


def _score(task, problems, results) -> dict:
    correct = [r.answer is not None and task.check(p, r.answer).correct for p, r in zip(problems, results)]
    compute = [r.compute.policy_tokens + r.compute.denoising_steps for r in results]
    seconds = [r.compute.wall_seconds for r in results]
    return {"accuracy": rate(correct).to_json(), "mean_compute": sum(compute) / max(len(compute), 1),
            "mean_wall_seconds": sum(seconds) / max(len(seconds), 1)}


def distill(config: DistillConfig, log=print, command: str | None = None) -> Path:
    """Select chains with the teacher's strategy, train, bundle and measure; returns the bundle directory."""
    from vot.bundle import make_bundle
    from vot.chain import write_problem_chains
    from vot.components import build_reasoner, reasoning_settings, resolve_device, resolve_policy, sketcher_of
    from vot.improve import ChainFilter, check_filter, train_on_chains

    task = tasks.get(config.task)
    config.task = task.id
    out = Path(config.out)
    progress_path = out / "selection.json"  # the sizes whose chains ``selected.jsonl`` holds, and their counts
    if out.exists() and any(out.iterdir()) and not (config.resume and progress_path.is_file()):
        raise ValueError(f"{out} is not empty; choose another --out" + (" (it holds no selection to resume)" if config.resume else
                                                                         " or pass --resume to continue it"))
    saved = json.loads(progress_path.read_text()) if config.resume and progress_path.is_file() else None
    if saved is not None and _identity(saved["config"]) != _identity(config):
        changed = sorted(k for k in SELECTION_SETTINGS if saved["config"].get(k) != _identity(config)[k])
        raise ValueError(f"--resume with other settings than {out}'s run ({', '.join(changed)}); use its own or a new --out")
    check_filter(task, config.filter)  # before any sampling
    chain_filter = ChainFilter(config.filter, verifier_device=resolve_device(config.device))
    if min(config.n, config.problems_per_size, config.steps, config.eval_count, config.batch) < 1 or not 0 < config.chain_share <= 1:
        raise ValueError("--n, --problems, --steps and --eval-count must be positive, and the chain share in (0, 1]")
    teacher = resolve_policy(config.start, task.id)
    if teacher.policy_dir is None:
        raise ValueError(f"--from {config.start}: distillation trains a small policy; give a bundle or policy directory")
    began = time.perf_counter()
    reasoner = build_reasoner(task.id, policy=str(teacher.bundle or teacher.policy_dir), sketcher=config.sketcher,
                              seed=config.seed, device=config.device)
    out.mkdir(parents=True, exist_ok=True)
    kept_path = out / "selected.jsonl"
    done = {"config": _identity(config), "sizes": [], "right": 0, "kept": 0, "dropped": 0, "total": 0, "lines": 0,
            **(saved or {})}
    if kept_path.exists():  # keep only the sizes finished before a kill (one line per selected chain)
        lines = kept_path.read_text().splitlines(keepends=True)[:done["lines"]]
        kept_path.write_text("".join(lines))
    for size in config.sizes:
        if size in done["sizes"]:
            log(f"size {size}: selected in an earlier run")
            continue
        right = kept = dropped = total = 0
        labelled = generate_split(task, "train", size, config.problems_per_size, config.seed + 5000)
        blind = [replace(p, answer=None) for p in labelled]
        results = _strategy_on(config, reasoner, blind, config.strategy, config.n)
        pairs = []
        for problem, gold, result in zip(blind, labelled, results):
            total += 1
            if result.selected is None or result.answer is None:
                continue
            chain = result.chains[result.selected]
            if not chain.steps or not chain.steps[-1].is_answer:
                continue
            if not any(c is chain for c in chain_filter.accepted(problem, result.chains, gold)):
                dropped += 1  # the strategy chose it, the filter does not trust it
                continue
            pairs.append((problem, chain))
            kept += 1
            right += task.check(gold, chain.answer).correct  # measured after the fact
        write_problem_chains(kept_path, pairs)
        done["sizes"].append(size)
        done.update(right=done["right"] + right, kept=done["kept"] + kept, dropped=done["dropped"] + dropped,
                    total=done["total"] + total,
                    lines=done["lines"] + len(pairs))
        progress_path.write_text(json.dumps(done, indent=2))
        log(f"size {size}: {config.strategy}@{config.n} selected {len(pairs)} chains of {len(labelled)} problems"
            + (f" ({dropped} more dropped by the {config.filter} filter)" if config.filter != "none" else ""))
    del reasoner  # its batch-resident caches are the largest thing held: free them before training
    right, kept, total = done["right"], done["kept"], done["total"]
    if kept == 0:
        raise ValueError(f"{config.strategy}@{config.n} selected no chain to distil")
    if (out / "policy").exists():
        shutil.rmtree(out / "policy")  # killed while training: train again
    if (out / "bundle").exists():
        shutil.rmtree(out / "bundle")
    train_on_chains(task.id, str(teacher.policy_dir), [str(kept_path)], str(out / "policy"), steps=config.steps,
                    seed=config.seed, chain_share=config.chain_share, gold_problems_per_size=config.gold_problems_per_size,
                    device=config.device, sketcher=config.sketcher, batch_size=config.train_batch)
    settings = reasoning_settings(config.start, task.id)  # the student reasons as its teacher's bundle does
    sampling = {k: settings[k] for k in ("temperature", "top_p") if settings[k] is not None}
    bundle = make_bundle(out / "policy", out / "bundle", sketcher=sketcher_of(teacher, "default"),
                         sketch_steps=settings["sketch_steps"], max_steps=settings["max_steps"], answer=settings["answer"],
                         sampling=sampling)
    from vot.lm.card import write_card as policy_card

    policy_card(bundle, None)  # the policy's own card (its training lineage); the distillation is appended
    sizes = list(config.eval_sizes) or sorted(set(task.in_distribution) | set(config.sizes))
    reasoner = build_reasoner(task.id, policy=str(teacher.bundle or teacher.policy_dir), sketcher=config.sketcher,
                              seed=config.seed, device=config.device)
    student = build_reasoner(task.id, policy=str(bundle), sketcher=config.sketcher, seed=config.seed, device=config.device)
    table = {}
    for size in sizes:
        problems = generate_split(task, "test", size, config.eval_count, 0)
        table[str(size)] = {"teacher_greedy": _score(task, problems, _strategy_on(config, reasoner, problems, "greedy", 1)),
                            f"teacher_{config.strategy}@{config.n}": _score(task, problems, _strategy_on(
                                config, reasoner, problems, config.strategy, config.n)),
                            "distilled_greedy": _score(task, problems, _strategy_on(config, student, problems, "greedy", 1))}
        log(f"test size {size}: " + ", ".join(f"{k} {100 * v['accuracy']['value']:.0f}%" for k, v in table[str(size)].items()))
    summary = {"config": asdict(config), "command": command, "selected": kept, "dropped": done["dropped"], "problems": total,
               "precision": rate([True] * right + [False] * (kept - right)).to_json(), "test": table,
               "seconds": round(time.perf_counter() - began, 1)}
    (out / "distill.json").write_text(json.dumps(summary, indent=2))
    (bundle / "distill.json").write_text(json.dumps(summary, indent=2))
    write_card(bundle, summary)
    return bundle


def write_card(bundle: Path, summary: dict) -> None:
    """Append the distillation's lineage and numbers to the bundle's card."""
    c = summary["config"]
    names = list(next(iter(summary["test"].values())))
    rows = ["| size | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for size, cells in summary["test"].items():
        rows.append(f"| {size} | " + " | ".join(
            f"{100 * cells[k]['accuracy']['value']:.1f} ({cells[k]['mean_compute']:.0f})" for k in names) + " |")
    p = summary["precision"]
    filtered = "" if c.get("filter", "none") == "none" else (
        f" A selected chain was kept only when the `{c['filter']}` filter accepted it: it dropped "
        f"{summary['dropped']} of the {summary['selected'] + summary['dropped']} selections.")
    text = f"""

## Distillation

Made by `{summary['command'] or 'vot distill'}` from the teacher `{c['start']}`: `{c['strategy']}@{c['n']}`
(verifier `{c['verifier']}`) selected {summary['selected']} chains on {summary['problems']} unlabelled train-split
problems at sizes {c['sizes']}; {100 * p['value']:.1f}% [{100 * p['low']:.1f}, {100 * p['high']:.1f}] of them were right
(measured after the fact). The policy trained {c['steps']} steps on them ({c['chain_share']:.0%} of batches) and gold
replay, warm-started from the teacher's.{filtered}

Greedy test accuracy, % (mean compute per problem in brackets, policy tokens + denoising steps), {c['eval_count']} per size:

{chr(10).join(rows)}
"""
    card = bundle / "README.md"
    card.write_text((card.read_text() if card.exists() else "") + text)
