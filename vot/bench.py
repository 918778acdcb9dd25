"""``vot bench``: run strategies over a task's test problems and write a run directory.

The run directory holds ``config.json``, ``problems.jsonl`` (the problems, `vot.data`),
``results.jsonl`` (one line per chain, flushed one batch of problems at a time, so ``--resume``
loses nothing finished), ``sketches/``, ``summary.json``, ``scaling.png`` + ``scaling.json`` and
``report.html``; `vot.run.read_run` reads it back. ``summary.json`` metrics hold each group's
accuracy overall, ``by_size`` and ``by_distribution`` (in / out of the task's training sizes);
``by_length`` splits MCQ accuracy by the stated action count (1-4, 5-8, 9-16, 17+); planning tasks add
``planning`` (progress rate, invalid-move share overall and among failures, goal reached: VPRL's
metrics, `_planning`); ``curves_by_size``
and ``curves_by_distribution`` repeat the pool curves per part.

Strategies come in two kinds. *Sampling* strategies (best_of_n, weighted_best_of_n,
self_consistency) are read off one pool of N_max chains per problem by subsampling every k.
*Search* strategies (greedy, sketch_search, beam, dvts, refine, adaptive, compute_optimal) are
run at each N.

Settings (``--set``) apply to every chosen strategy that has the field (``sketch_candidates=4``) or,
written ``strategy.field=value`` (``compute_optimal.budget=3``), to that strategy only.

Compute: ``summary.json["compute"]`` weighs each group's policy tokens and denoising steps by their
cost measured in the run (`vot.compute.CostModel.measured`) and states it relative to greedy, so
strategies compare at equal compute, not only at equal N. It is kept out of ``metrics`` because it
holds timings, the one thing a rerun may change.
"""
from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

import tasks
from tasks.metrics import LENGTH_BINS, length_bin, rate, summarize_scores
from tasks.splits import generate_split
from vot.bundle import check_answer
from vot.chain import ChainLog
from vot.components import REFERENCE, build_reasoner, check_names, check_task, resolve_device, resolve_policy
from vot.distributed import Shard, has_results, merge_rank_logs
from vot.reasoner import SketchSearch
from vot.run import ChainRecord, ResultSummary, read_run
from vot.scaling import curves, powers_of_two, summarize_curves
from vot.strategies import STRATEGIES, make_config, run_strategy
from vot.verifiers import VERIFIERS, ConfidenceVerifier, ConsistencyVerifier, get_verifier

SAMPLING = ("best_of_n", "weighted_best_of_n", "self_consistency")
SEARCH = tuple(name for name in STRATEGIES if name not in SAMPLING)  # greedy, beam, dvts, refine, adaptive, ...
RETIRED = {"encoder": "auto"}  # config fields of older runs (--encoder: the policy owns its encoder now)
ADDED = {"answer": None}  # config fields newer than some runs, at the value that reproduces those runs
CURVE_OF = {"best_of_n": "best_of_k/{v}", "weighted_best_of_n": "weighted@k/{v}", "self_consistency": "maj@k"}


@dataclass
class BenchConfig:
    """Everything that determines a run's results (``out`` and ``resume`` do not)."""

    task: str
    policy: str = "default"  # the shipped bundle; "simulated" is the reference policy
    sketcher: str = "default"
    error_rate: float = 0.3
    # the main job: greedy, the sampled pool read as best-of-k and majority curves, and two searches
    # that rewind to the first rejected step (refine, compute_optimal); about two minutes on 2 CPU cores
    strategies: list[str] = field(default_factory=lambda: ["greedy", "best_of_n", "self_consistency", "refine", "compute_optimal"])
    verifier: str = "consistency"
    n: list[int] = field(default_factory=lambda: [4])  # the sampling curves still show k = 1, 2, 4
    settings: dict = field(default_factory=dict)  # strategy settings: width, rounds, threshold, window, margin, aggregate
    sizes: list[int] | None = None
    count: int = 10  # problems per size: the default run finishes in about two minutes on 2 CPU cores
    seed: int = 0
    max_steps: int | None = None  # None: the bundle's, raised to cover the longest stated action sequence
    sketch_steps: int | None = None  # denoising steps (default: the bundle's, else the sketcher's)
    answer: str | None = None  # written or walked (`vot.reasoner.Reasoner`); None: the bundle's
    device: str = "auto"
    batch: int = 32
    out: str | None = None
    resume: bool = False

    def identity(self) -> dict:
        record = asdict(self)
        record.pop("out"), record.pop("resume"), record.pop("batch")
        return record


def validate(config: BenchConfig) -> tasks.Task:
    """Every check that can fail, before any work starts."""
    task = tasks.get(config.task)
    config.task = task.id
    check_names(config.policy, config.sketcher)
    check_task(resolve_policy(config.policy, task.id), config.policy, task.id)
    if isinstance(config.count, bool) or not isinstance(config.count, int) or config.count < 1:
        raise ValueError(f"--count must be a positive integer (problems per size), got {config.count!r}")
    if config.batch < 1:
        raise ValueError(f"--batch must be a positive integer, got {config.batch}")
    if config.max_steps is not None and config.max_steps < 1:
        raise ValueError(f"--max-steps must be a positive integer, got {config.max_steps}")
    if config.answer is not None:
        check_answer(config.answer)
    for name in config.strategies:
        if name not in STRATEGIES:
            raise ValueError(f"unknown strategy {name!r}; available: {', '.join(STRATEGIES)}")
    if config.verifier not in VERIFIERS or config.verifier in ("oracle", "vote"):
        raise ValueError(f"--verifier must be a non-oracle step-level verifier (consistency, confidence, learned), got {config.verifier!r}")
    if not config.n or any(n < 1 for n in config.n):
        raise ValueError(f"--n must list positive integers, got {config.n}")
    resolve_device(config.device)
    for size in config.sizes or []:
        task.check_size(size)
    for name in config.strategies:
        for n in config.n:
            _search_config(name, n, config.settings)  # raises on a bad N or setting
    used = {key for name in config.strategies for key in _settings_of(name)}
    used |= {f"{name}.{key}" for name in config.strategies for key in _settings_of(name)}
    unused = sorted(set(config.settings) - used)
    if unused:
        raise ValueError(f"setting(s) {unused} are not used by the chosen strategies {config.strategies}")
    _pool_search_candidates(config)
    return task


def reference_components(config: BenchConfig) -> list[str]:
    """The reference (non-learned) components a run uses, to label its results."""
    return sorted({config.policy, config.sketcher} & REFERENCE)


def step_budget(config: BenchConfig, task: tasks.Task, problems) -> tuple[int, str]:
    """(thoughts per chain, a note for the terminal). An MCQ chain needs one step per stated action
    plus its answer: the bundle's budget (or the default 64) is raised to that; an explicit
    ``--max-steps`` below it is kept (a cap for a quick run) with a warning."""
    longest = max(problems, key=lambda p: len(p.actions))
    needed = len(longest.actions) + 1 if longest.actions else 1
    stated = f"the longest stated action sequence has {len(longest.actions)} actions (size {longest.meta['size']})"
    if config.max_steps is not None:
        if config.max_steps < needed:
            return config.max_steps, (f"warning: --max-steps {config.max_steps} is below {needed}: {stated}, so chains "
                                      "that follow it stop unanswered (counted wrong)")
        return config.max_steps, ""
    own = resolve_policy(config.policy, task.id).max_steps
    if own >= needed:
        return own, ""
    return needed, f"note: max_steps raised from {own} to {needed}: {stated}"


def _settings_of(name: str) -> set[str]:
    from dataclasses import fields

    return {f.name for f in fields(STRATEGIES[name][1])} - {"n"}


def _values_for(name: str, settings: dict) -> dict:
    """The settings that apply to strategy ``name``: plain keys it has, then ``name.key`` ones."""
    known = _settings_of(name)
    values = {k: v for k, v in settings.items() if k in known}
    values |= {k.split(".", 1)[1]: v for k, v in settings.items() if k.startswith(f"{name}.") and k.split(".", 1)[1] in known}
    return values


def _pool_search_candidates(config: BenchConfig) -> int:
    """Sketch candidates for the shared pool of the sampling strategies (they must agree)."""
    chosen = {_values_for(name, config.settings).get("sketch_candidates", 1) for name in config.strategies if name in SAMPLING}
    if len(chosen) > 1:
        raise ValueError(f"the sampling strategies share one pool of chains; give them one sketch_candidates, not {sorted(chosen)}")
    return chosen.pop() if chosen else 1


def _search_config(name: str, n: int, settings: dict):
    values = _values_for(name, settings)
    config = make_config(name, **({} if name == "greedy" else {"n": n}), **values)
    width = getattr(config, "width", None)
    if width is not None and n % width:
        raise ValueError(f"{name} cannot take n={n}: n must be a multiple of width={width}")
    return config


def _groups(config: BenchConfig) -> list[tuple[str, int]]:
    groups = []
    if "greedy" in config.strategies:
        groups.append(("greedy", 1))
    groups += [(name, n) for name in config.strategies if name in SEARCH and name != "greedy" for n in config.n]
    return groups


def run_bench(config: BenchConfig, progress: bool | None = None) -> dict:
    """Run (or resume) the benchmark; returns the summary written to ``summary.json``.

    Under a launcher (``accelerate launch``, ``torchrun``) each process runs its share of the
    unfinished problems into its own log; the main process merges them into ``results.jsonl`` and
    writes the summary, plot and report (`vot.distributed`). Every process returns the summary."""
    task = validate(config)
    sizes = config.sizes or list(task.in_distribution + task.out_of_distribution)
    problems = [p for size in sizes for p in generate_split(task, "test", size, config.count, config.seed)]
    config.max_steps, budget_note = step_budget(config, task, problems)
    out = Path(config.out or f"runs/{task.id}-{Path(config.policy).name}-{Path(config.sketcher).name}-seed{config.seed}")
    shard = Shard.current()
    log = ChainLog(out, name=shard.log_name)
    _prepare_run_dir(out, config, shard, problems)
    done = shard.resume(out, problems) if config.resume else set()
    todo = shard.pick([p for p in problems if p.id not in done])
    if shard.is_main:
        print(first_line(config, task, sizes, len(problems), len(done), shard.world))
        if budget_note:
            print(budget_note)
    reasoner = build_reasoner(task.id, policy=config.policy, sketcher=config.sketcher, error_rate=config.error_rate,
                              seed=config.seed, max_steps=config.max_steps, device=config.device,
                              sketch_steps=config.sketch_steps, answer=config.answer)
    selector = get_verifier(config.verifier)
    started = time.perf_counter()
    batches = [todo[i:i + config.batch] for i in range(0, len(todo), config.batch)]
    for batch in _progress(batches, progress if shard.is_main else False):
        _run_batch(batch, reasoner, selector, config, log)
    shard.wait()  # every process has flushed its share
    if shard.is_main:
        merge_rank_logs(out, problems)
        summary = summarize_run(out, config, problems, wall_seconds=time.perf_counter() - started,
                                attention_backend=reasoner.attention_backend)
        print(format_table(summary))
        print(f"wrote {out}/ (results.jsonl, summary.json, scaling.png); read it in {out / 'report.html'} "
              f"or chain by chain with: vot show {out}")
    shard.wait()  # summary.json is written
    return summary if shard.is_main else json.loads((out / "summary.json").read_text())


def first_line(config: BenchConfig, task: tasks.Task, sizes, problems: int, done: int, world: int = 1) -> str:
    """What a run is about to do: the task, the sizes in and out of distribution, the bundle or
    components it runs, and which of them are reference components."""
    inside = [s for s in sizes if s in task.in_distribution]
    outside = [s for s in sizes if s not in task.in_distribution]
    where = "; ".join(part for part in (f"in distribution {','.join(map(str, inside))}" if inside else "",
                                        f"out of distribution {','.join(map(str, outside))}" if outside else "") if part)
    choice = resolve_policy(config.policy, task.id)
    policy = f"bundle {choice.bundle}" if choice.bundle else f"policy {choice.policy_dir or config.policy}"
    sketcher = choice.sketcher if config.sketcher == "default" and choice.bundle else config.sketcher
    if sketcher == "default":
        from imagegen import PRETRAINED
        from imagegen.data import environment_of

        sketcher = f"default ({PRETRAINED / environment_of(task.id)})"
    processes = f" over {world} processes" if world > 1 else ""
    reference = ", ".join(reference_components(config)) or "none"
    return (f"vot bench {task.id}: {problems} problems ({config.count} per size; {where}), {done} already done{processes}; "
            f"{policy}, sketcher {sketcher}; REFERENCE components: {reference}")


def _prepare_run_dir(out: Path, config: BenchConfig, shard: Shard = Shard(), problems=()) -> None:
    """Every process checks the run directory; then (after a barrier, so no process sees another's
    write) the main process saves ``config.json`` and the run's ``problems`` as ``problems.jsonl``
    (`vot.data.save_problems`; the images are the report's ``sketches/<problem>/input.png``).
    Resuming on other problems than the saved ones (a generator changed since) is refused."""
    from vot.chain import safe_name
    from vot.data import PROBLEMS, read_problems, save_problems

    saved = out / "config.json"
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a run directory")
    if saved.exists():
        previous = json.loads(saved.read_text())
        for key, value in RETIRED.items():  # a field a newer vot dropped, at the value it always had
            if previous.get(key) == value:
                previous.pop(key)
        for key, value in ADDED.items():
            previous.setdefault(key, value)
        if not config.resume:
            raise ValueError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
        if previous != config.identity():
            missing = object()
            changed = sorted(k for k in set(previous) | set(config.identity())
                             if previous.get(k, missing) != config.identity().get(k, missing))
            raise ValueError(f"--resume: {out} was written by a different config (differs in {changed})")
        if (out / PROBLEMS).exists() and [p.dumps() for p in read_problems(out / PROBLEMS)] != [p.dumps() for p in problems]:
            raise ValueError(f"--resume: {out / PROBLEMS} holds other problems than this config generates "
                             "(did a task generator change?); choose another --out")
    elif has_results(out):
        raise ValueError(f"{out} has results but no config.json; refusing to mix runs")
    shard.wait()
    if shard.is_main:
        out.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(config.identity(), indent=2, sort_keys=True))
        save_problems(problems, out, lambda _, problem: f"sketches/{safe_name(problem.id)}/input.png")


def _progress(batches, enabled):
    """The batches, with a tqdm bar on a terminal; elsewhere (``enabled=None`` and stderr not a
    terminal) a plain line every 30 seconds and at the end; ``enabled=False``: nothing."""
    import sys

    from tqdm.auto import tqdm

    if enabled is None and not sys.stderr.isatty():
        return _progress_lines(batches)
    return tqdm(batches, desc="problem batches", disable=not enabled)


def _progress_lines(batches, every: float = 30.0):
    began = last = time.perf_counter()
    problems = 0
    for i, batch in enumerate(batches, start=1):
        yield batch
        problems += len(batch)
        now = time.perf_counter()
        if now - last >= every or i == len(batches):
            last = now
            print(f"progress: {i}/{len(batches)} batches, {problems} problems, {now - began:.0f} s", flush=True)


def _run_batch(batch, reasoner, selector, config: BenchConfig, log: ChainLog) -> None:
    task = tasks.get(config.task)
    records: dict[str, list] = {p.id: [] for p in batch}
    sampling = [s for s in config.strategies if s in SAMPLING]
    if sampling:
        n_max = max(config.n)
        candidates = _pool_search_candidates(config)
        pools = reasoner.run(batch, n_max, search=SketchSearch(candidates, selector) if candidates > 1 else None)
        scorers = [ConsistencyVerifier(), ConfidenceVerifier()]
        if selector.label not in {v.label for v in scorers}:
            scorers.append(selector)  # e.g. learned: its best-of-k curve is the reported selection
        for problem, chains in zip(batch, pools):
            for chain in chains:
                scores = {v.label: v.score(problem, chain, chains, _aggregate(config)) for v in scorers}
                records[problem.id].append((_record(problem, chain, "pool", n_max, "none", False, None, task, scores), chain))
    for name, n in _groups(config):
        values = asdict(_search_config(name, n, config.settings))
        results = run_strategy(name, batch, reasoner, selector, **values)
        for problem, result in zip(batch, results):
            correct = result.answer is not None and task.check(problem, result.answer).correct
            summary = ResultSummary(result.answer, correct, result.chains_used, result.compute)
            for i, chain in enumerate(result.chains):
                records[problem.id].append((_record(problem, chain, name, n, result.verifier, i == result.selected, summary, task), chain))
    for problem in batch:
        pairs = records[problem.id]
        log.write_problem([r for r, _ in pairs], [c for _, c in pairs])


def _aggregate(config: BenchConfig) -> str:
    return config.settings.get("aggregate", "min")


def _record(problem, chain, strategy, n, verifier, selected, result, task, chain_scores=None) -> dict:
    """The log line of one chain (`vot.run.ChainRecord`; `ChainLog.write_problem` adds the chain)."""
    correct = chain.answer is not None and task.check(problem, chain.answer).correct
    return ChainRecord(problem.id, problem.meta["size"], strategy, n, verifier, selected, correct, result, chain,
                       chain_scores or {}).to_json()


def _written_accuracy(task, by_id, results, selected) -> dict:
    """For chains that answered the plan they walked (``--answer walked``): the exact match their
    written answers would have scored, over the same problems as ``accuracy`` (``results``; a
    problem with no selected chain counts wrong); empty otherwise."""
    if not any(r.chain.answered_walked for r in selected):
        return {}
    chosen = {r.problem_id: r.chain for r in selected}
    texts = [(by_id[pid], chosen[pid].meta.get("written_answer", chosen[pid].answer) if pid in chosen else None)
             for pid in results]
    written = [text is not None and task.check(problem, text).correct for problem, text in texts]
    return {"written_answer_accuracy": rate(written).to_json()}


def _planning(task, answered) -> dict:
    """VPRL's planning metrics of a group's selected answers, ``answered`` (problem, answer text or
    None): mean progress rate (the share of the shortest plan made good from the start), the share
    of plans with an invalid move, that share among the failures, and the share reaching the goal
    (`tasks.summarize_scores`). An answer with no plan counts as invalid with progress 0."""
    scores = [task.check(problem, answer or "") for problem, answer in answered]
    summary = summarize_scores(scores)
    failures = summary["invalid_among_failures"]
    return {"progress_rate": summary["progress_rate"], "invalid": rate(not s.valid for s in scores).to_json(),
            "invalid_among_failures": failures.to_json() if failures.total else None,
            "reached": rate(bool(s.reached) for s in scores).to_json()}


def summarize_run(out: Path, config: BenchConfig, problems, wall_seconds: float = 0.0,
                  attention_backend: str = "unknown") -> dict:
    """Metrics from ``results.jsonl`` (in problem order, so a resumed run summarizes identically)."""
    from vot.report import write_report, write_scaling_plot

    task = tasks.get(config.task)
    order = {p.id: i for i, p in enumerate(problems)}
    by_id = {p.id: p for p in problems}
    stated = {p.id: length_bin(len(p.actions)) for p in problems if p.actions}  # MCQ: the stated sequence's bin
    records = sorted(read_run(out).records, key=lambda r: (order.get(r.problem_id, len(order)), r.strategy, r.n, r.chain.sample))
    metrics: dict = {}
    by_group: dict[str, dict[str, tuple[int, ResultSummary]]] = {}
    for record in records:
        if record.result is not None:
            by_group.setdefault(record.group, {})[record.problem_id] = (record.size, record.result)
    for group, results in by_group.items():
        values = list(results.values())
        bins = {}
        for problem_id, (_, v) in results.items():
            if problem_id in stated:
                bins.setdefault(stated[problem_id], []).append(v.correct)
        metrics[group] = {
            "accuracy": rate(v.correct for _, v in values).to_json(),
            "by_size": {str(s): rate(v.correct for size, v in values if size == s).to_json()
                        for s in sorted({size for size, _ in values})},
            "by_distribution": {part: rate(v.correct for size, v in values if _part(task, size) == part).to_json()
                                for part in DISTRIBUTIONS if any(_part(task, size) == part for size, _ in values)},
            **({"by_length": {b: rate(bins[b]).to_json() for b in (length_bin(low) for low, _ in LENGTH_BINS) if b in bins}}
               if bins else {}),
            **({"planning": _planning(task, [(by_id[pid], v.answer) for pid, (_, v) in results.items()])}
               if task.kind == "nav" else {}),
            **_written_accuracy(task, by_id, results, [r for r in records if r.group == group and r.selected]),
            "mean_compute": {k: float(np.mean([v.compute.counts()[k] for _, v in values])) for k in values[0][1].compute.counts()},
            "mean_chains": float(np.mean([v.chains_used for _, v in values])),
        }
    curve_summary = _pool_curves(records, config, task)
    sizes = sorted({r.size for r in records if r.strategy == "pool"})
    curves_by = {"size": {str(s): _pool_curves([r for r in records if r.size == s], config, task) for s in sizes},
                 "distribution": {part: _pool_curves([r for r in records if _part(task, r.size) == part], config, task)
                                  for part in DISTRIBUTIONS if any(_part(task, s) == part for s in sizes)}}
    for name in config.strategies:
        if name in SAMPLING:
            label = CURVE_OF[name].format(v=config.verifier)
            curve = curve_summary.get(label, {})
            for n in config.n:
                if str(n) in curve:
                    metrics[f"{name}@{n}"] = {
                        "accuracy": curve[str(n)], "subsampled_from": max(config.n),
                        "by_size": {s: c[label][str(n)] for s, c in curves_by["size"].items()},
                        "by_distribution": {part: c[label][str(n)] for part, c in curves_by["distribution"].items()}}

    summary = {
        "schema": "vot.summary/1",
        "config": config.identity(),
        "reference_components": reference_components(config),
        "selection_verifier": config.verifier,
        "versions": _versions(),
        "device": _device(config.device),
        "attention_backend": attention_backend,
        "problems": len(problems),
        "metrics": metrics,
        "curves": curve_summary,
        "curves_by_size": curves_by["size"],
        "curves_by_distribution": curves_by["distribution"],
        "compute": compute_axis(records, by_group, config),
        "timing": {"wall_seconds": wall_seconds},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    write_scaling_plot(out, summary)
    write_report(read_run(out))
    return summary


DISTRIBUTIONS = ("in_distribution", "out_of_distribution")


def _part(task: tasks.Task, size: int) -> str:
    """``in_distribution`` or ``out_of_distribution``: where a problem size stands for ``task``."""
    return "in_distribution" if size in task.in_distribution else "out_of_distribution"


def compute_axis(records: list[ChainRecord], by_group: dict, config: BenchConfig) -> dict:
    """Each group's mean compute per problem: policy tokens and denoising steps weighted by their
    cost measured in this run, in seconds and relative to greedy@1 (without greedy, to one
    sampled chain; without either, to the first ``--strategy`` at its lowest ``--n``: a fixed rule,
    so two runs of one command share their unit), plus wall seconds. A subsampled group at k costs k pool chains; so does a
    point k of the pool curves (``curves``: {curve k: relative compute}). ``by_group``: {group:
    {problem id: (size, its `ResultSummary`)}}."""
    from vot.compute import CostModel

    model = CostModel.measured(r.chain.compute for r in records)
    groups: dict[str, dict] = {}
    for group, results in by_group.items():
        computes = [v.compute for _, v in results.values()]
        groups[group] = {"cost_seconds": float(np.mean([model.cost(c) for c in computes])),
                         "wall_seconds": float(np.mean([c.wall_seconds for c in computes]))}
    pool = [r.chain.compute for r in records if r.strategy == "pool"]
    per_chain = {"cost_seconds": float(np.mean([model.cost(c) for c in pool])) if pool else 0.0,
                 "wall_seconds": float(np.mean([c.wall_seconds for c in pool])) if pool else 0.0}
    if pool:
        for name in config.strategies:
            if name in SAMPLING:
                for n in config.n:
                    groups[f"{name}@{n}"] = {key: n * value for key, value in per_chain.items()}
    if "greedy@1" in groups:
        unit_name, unit = "greedy@1", groups["greedy@1"]["cost_seconds"]
    elif pool:
        unit_name, unit = "one sampled chain", per_chain["cost_seconds"]
    elif groups:  # neither greedy nor a pool ran (a search alone): the first strategy at its lowest n
        named = [f"{name}@{n}" for name in config.strategies for n in sorted(config.n) if f"{name}@{n}" in groups]
        unit_name = named[0] if named else sorted(groups)[0]
        unit = groups[unit_name]["cost_seconds"]
    else:
        unit_name, unit = "none", 0.0
    for values in groups.values():
        values["relative"] = values["cost_seconds"] / unit if unit > 0 else float("nan")
    ks = powers_of_two(max(config.n)) if pool else []
    return {"cost_model": model.to_json(), "unit": unit_name, "unit_cost_seconds": unit, "groups": groups,
            "pool_chain": per_chain | {"relative": per_chain["cost_seconds"] / unit if unit > 0 else float("nan")},
            "curves": {str(k): k * per_chain["cost_seconds"] / unit if unit > 0 else float("nan") for k in ks}}


def _pool_curves(records: list[ChainRecord], config: BenchConfig, task) -> dict:
    """The best-of-k, weighted, majority and pass@k curves (`vot.scaling`) over the pool chains
    among ``records``, with bootstrap intervals; ``{}`` without a pool."""
    from vot.scaling import ScoredPool

    pools: dict[str, list[ChainRecord]] = {}
    for record in records:
        if record.strategy == "pool":
            pools.setdefault(record.problem_id, []).append(record)
    if not pools:
        return {}
    scored = []
    for chains in pools.values():
        keys = []
        for r in chains:
            parsed = task.parse_answer(r.chain.answer) if r.chain.answer is not None else None
            keys.append(tuple(parsed) if isinstance(parsed, list) else parsed)
        labels = chains[0].chain_scores.keys()
        scored.append(ScoredPool(keys, np.array([r.correct for r in chains]),
                                 {label: np.array([r.chain_scores[label] for r in chains]) for label in labels}))
    rng = np.random.default_rng([config.seed, 2024])
    return summarize_curves(curves(scored, powers_of_two(max(config.n)), rng), rng)


def _versions() -> dict:
    import importlib.metadata as md

    import vot

    versions = {"vot": vot.__version__, "python": platform.python_version()}
    for package in ("numpy", "torch", "diffusers", "transformers", "accelerate", "pillow", "gymnasium", "minigrid"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            versions[package] = None
    return versions


def _device(requested: str) -> str:
    import torch

    device = resolve_device(requested)
    if device.startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"cpu ({platform.processor() or platform.machine()})"


def format_table(summary: dict) -> str:
    """The bench's table: accuracy with its interval, and compute relative to greedy."""
    compute = summary.get("compute", {})
    unit = compute.get("unit", "greedy@1")
    lines = [f"{'strategy@N':<28} {'accuracy [95% CI]':<26} {'n':>5}  {'compute':>8}  mean policy tokens / sketches per problem"]
    for group, m in summary["metrics"].items():
        a = m["accuracy"]
        counts = m.get("mean_compute")
        extra = f"{counts['policy_tokens']:.0f} / {counts['sketches']:.1f}" if counts else f"(subsampled from N={m['subsampled_from']})"
        relative = compute.get("groups", {}).get(group, {}).get("relative")
        cost = f"{relative:7.2f}x" if relative is not None else f"{'':>8}"
        lines.append(f"{group:<28} {100 * a['value']:5.1f}% [{100 * a['low']:5.1f}, {100 * a['high']:5.1f}]   {a['n']:>5}  {cost}  {extra}")
    if compute:
        model = compute["cost_model"]
        lines.append(f"compute: policy tokens + denoising steps weighted by their measured cost "
                     f"({1e3 * model['seconds_per_token']:.2f} ms/token, {1e3 * model['seconds_per_denoising_step']:.2f} ms/denoising step), "
                     f"relative to {unit}")
    for group, m in summary["metrics"].items():
        planning = m.get("planning")
        if planning:
            among = planning["invalid_among_failures"]
            lines.append(f"planning {group}: progress rate {100 * planning['progress_rate']:.1f}%, reached the goal "
                         f"{100 * planning['reached']['value']:.1f}%, invalid move in {100 * planning['invalid']['value']:.1f}% "
                         f"of plans" + (f" and {100 * among['value']:.1f}% of failures" if among else ""))
        written = m.get("written_answer_accuracy")
        if written:
            lines.append(f"answers {group}: the walked plans (--answer walked); the written answers would score "
                         f"{100 * written['value']:.1f}%")
    passk = summary["curves"].get("pass@k/oracle")
    if passk:
        lines.append("oracle pass@k (not a selection): " + ", ".join(f"k={k}: {100 * v['value']:.1f}%" for k, v in passk.items()))
    return "\n".join(lines)
