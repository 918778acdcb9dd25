"""Self-improvement from easy to hard without labels (``vot improve``).

After Lee et al. (ICML 2025, self-improving transformers): a policy trained on easy problems
samples chains on slightly harder, unlabelled ones, keeps what a filter trusts, retrains on it with
a replay of its gold training data, and repeats one size further. Each round of ``--out``:

1. generates train-split problems at the round's sizes (``--sizes`` taken ``sizes_per_round`` at a
   time) and strips their answers: the sampler and the filters never see gold;
2. samples ``n`` chains per problem through the full loop (policy, diffusion sketcher, encoder);
3. keeps chains by the filter (`ChainFilter`; ``reward`` for planning tasks: the simulator's
   exact-match check of the plan, rejection-sampling fine-tuning); each kept chain's correctness is measured after the fact
   (the filter's *precision*), as is the share of problems that kept one (*coverage*);
4. continues training the policy on the kept chains (``chain_share`` of the batches) and gold
   traces of the task's training sizes (the rest), warm-started from the previous round;
5. evaluates greedy accuracy on the test split at every size.

A round directory holds ``kept.jsonl`` (+ sketches), ``policy/`` and ``round.json``; a round whose
``round.json`` exists is skipped, so ``--resume`` continues where a killed run stopped. ``rounds.jsonl``,
``accuracy.png`` (accuracy by size per round) and ``README.md`` (a card with the lineage) are
rewritten after each round. The gold answer is read only for precision and evaluation, and by
the ``gold`` control filter.

With ``--sketcher-steps N`` and a filter that checks every sketch (``consistency``), each round
also fine-tunes the sketcher for N steps on the kept chains' transitions (each sketch read back,
re-rendered clean; the verifier found it to be the simulator's state after the stated thought),
half of its batches, with a replay of its gold transitions; the next round samples with it
(``round-k/sketcher``, ``round-k/transitions.npz``).

Sampling and evaluation shard over the processes of a launcher, as `vot bench` does
(``accelerate launch --multi_gpu --num_processes K -m vot improve …``; `vot.distributed`): every
process runs every K-th problem, the main process gathers the chains in problem order (so the
training data, and with it the run, is the single process's), trains and writes; the others wait.
"""
from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import tasks
from tasks.metrics import rate
from tasks.splits import generate_split
from vot.distributed import Shard, run_alone

FILTER_NAMES = ("vote", "consistency", "learned", "length", "reward", "none", "gold")
# the sketcher's fine-tuning rate: 300 steps on a maze round's verified chains took the shipped maze sketcher
# from 100% to 65% per-step fidelity at size 9 at the tiny preset's from-scratch 2e-3, and to 87% at this
# rate (BENCHMARKS.md, session 14): a sketcher with no headroom gains nothing, so --sketcher-steps is off by default
SKETCHER_FINE_TUNE_LR = 1e-4
ADDED = {"sketcher_steps": 0, "sketcher_replay": 200}  # settings newer than some runs, at the values those runs had


@dataclass
class ImproveConfig:
    """What ``vot improve`` does; see the module docstring."""

    task: str
    start: str  # a bundle (name or directory) or a policy directory
    out: str
    rounds: int = 3
    sizes: list[int] = field(default_factory=lambda: [7, 8, 9, 10, 11, 12])
    sizes_per_round: int = 1
    filter: str = "vote"  # FILTER_NAMES joined by "+": every part must keep the chain
    n: int = 8
    vote_share: float = 0.75  # vote: the majority answer's share of the n chains must reach this
    problems_per_size: int = 100  # unlabelled problems per size and round
    steps: int = 300  # training steps per round
    chain_share: float = 0.5
    gold_problems_per_size: int = 500  # replayed gold traces per training size
    eval_count: int = 25  # test problems per size
    eval_sizes: list[int] = field(default_factory=list)  # default: the training sizes and --sizes
    seed: int = 0
    device: str = "auto"
    resume: bool = False
    batch: int = 64  # problems sampled together
    sketcher: str = "default"  # the sketcher of sampling and evaluation ("oracle": perfect sketches, for tests)
    sketcher_steps: int = 0  # > 0: fine-tune the sketcher this many steps a round on verified transitions
    sketcher_replay: int = 200  # gold train problems per size replayed in that fine-tuning


def parse_filter(spec: str) -> list[str]:
    """``"vote+length"`` -> ``["vote", "length"]``; ``none`` and ``gold`` stand alone."""
    parts = [p.strip() for p in spec.split("+") if p.strip()]
    unknown = [p for p in parts if p not in FILTER_NAMES]
    if not parts or unknown:
        raise ValueError(f"--filter must be {', '.join(FILTER_NAMES)} or a '+' combination, got {spec!r}")
    if len(parts) > 1 and {"none", "gold"} & set(parts):
        raise ValueError(f"--filter: none and gold are controls and stand alone, got {spec!r}")
    return parts


def check_filter(task, spec: str) -> list[str]:
    """The parts of ``spec``, or a ValueError when they cannot judge ``task``'s chains."""
    parts = parse_filter(spec)
    if task.kind != "mcq" and not {"reward", "vote", "none", "gold"} >= set(parts):
        raise ValueError(f"{task.id} is a planning task: filter its plans by reward (the simulator's check), vote, none or gold")
    if "reward" in parts and task.kind != "nav":
        raise ValueError(f"the reward filter scores plans in the simulator: {task.id} is not a planning task")
    return parts


def majority(pool) -> tuple[str | None, float]:
    """The most common answer among the chains (ties to the first seen) and its share of them."""
    answers = [c.answer for c in pool if c.answer is not None]
    if not answers:
        return None, 0.0
    best = max(dict.fromkeys(answers), key=answers.count)
    return best, answers.count(best) / len(pool)


class ChainFilter:
    """Keeps the chains of one problem's pool that every part of the filter accepts; at most one per
    problem (the first accepted), so a problem weighs the same whatever its agreement."""

    def __init__(self, spec: str, vote_share: float = 0.75, verifier_device: str = "cpu"):
        self.parts = parse_filter(spec)
        self.vote_share = vote_share
        self._verifiers = {}
        if "consistency" in self.parts:
            from vot.verifiers import ConsistencyVerifier

            self._verifiers["consistency"] = ConsistencyVerifier()
        if "learned" in self.parts:
            from vot.learned_verifier import LearnedVerifier

            self._verifiers["learned"] = LearnedVerifier(device=verifier_device)

    def keep(self, unlabelled, pool, labelled=None) -> list:
        """The kept chains of ``pool`` for the problem ``unlabelled`` (answer stripped): the first
        accepted one; only the ``gold`` control reads ``labelled``."""
        return self.accepted(unlabelled, pool, labelled)[:1]

    def accepted(self, unlabelled, pool, labelled=None) -> list:
        """Every chain of ``pool`` that each part of the filter accepts (``vote`` judges the whole pool)."""
        accepted = [c for c in pool if c.answer is not None and c.steps and c.steps[-1].is_answer]
        for part in self.parts:
            if part == "vote":
                answer, share = majority(pool)
                accepted = [c for c in accepted if share >= self.vote_share and c.answer == answer]
            elif part == "length":
                accepted = [c for c in accepted if sum(not s.is_answer for s in c.steps) == len(unlabelled.actions)]
            elif part == "consistency":
                accepted = [c for c in accepted if min(self._verifiers[part].step_scores(unlabelled, c)) >= 1.0]
            elif part == "learned":
                accepted = [c for c in accepted if min(self._verifiers[part].step_scores(unlabelled, c)) >= 0.5]
            elif part == "reward":  # planning: the simulator scores the plan itself (exact match); no gold plan is read
                task = tasks.get(unlabelled.task)
                accepted = [c for c in accepted if task.score_plan(unlabelled, task.parse_answer(c.answer) or []).correct]
            elif part == "gold":
                task = tasks.get(labelled.task)
                accepted = [c for c in accepted if task.check(labelled, c.answer).correct]
        return accepted


def train_on_chains(task_id: str, start_policy: str, chain_files: list[str], out: str, *, steps: int, seed: int,
                    chain_share: float, gold_problems_per_size: int, device: str, sketcher: str,
                    batch_size: int | None = None) -> Path:
    """Continue training ``start_policy`` (same shape, warm start) on the (problem, chain) files, with a
    ``1 - chain_share`` replay of gold traces of the task's training sizes: the recipe `improve` and
    `vot.distill` share. ``batch_size`` (default: the preset's 16) bounds memory: a batch of long planning
    chains (maze-nav at 7-8, thousands of positions each) needed over 14 GB at 16."""
    from vot.lm.train import PolicyTrainConfig, train_policy

    parent = json.loads(Path(start_policy, "policy.json").read_text())  # the same shape, so every tensor carries over
    recipe = Path(start_policy, "train_config.json")
    # the parent's share of sketcher-drawn gold chains (a maze-nav policy trained on perfect ones only)
    default_share = PolicyTrainConfig.sketcher_share
    parent_recipe = json.loads(recipe.read_text()) if recipe.is_file() else {}
    sketcher_share = parent_recipe.get("sketcher_share", default_share)
    position_gap = parent_recipe.get("position_gap", 0)  # a policy trained for longer chains keeps training so
    return train_policy(PolicyTrainConfig(
        task=task_id, mode="vot", steps=steps, out=out, seed=seed, init_from=start_policy, chains=list(chain_files),
        chain_share=chain_share, problems_per_size=gold_problems_per_size, eval_every=10**9, eval_count=1,
        device=device, canvas_share=0.2, shape=parent["shape"], sketcher="default" if sketcher == "default" else None,
        sketcher_share=sketcher_share, position_gap=position_gap, batch_size=batch_size), progress=False)


def round_sizes(config: ImproveConfig, number: int) -> list[int]:
    k = config.sizes_per_round
    return config.sizes[number * k:(number + 1) * k]


def _policy_dir(config: ImproveConfig, number: int) -> str:
    """The policy a round starts from: the start's, or the previous round's."""
    if number == 0:
        from vot.components import resolve_policy

        choice = resolve_policy(config.start, config.task)
        if choice.policy_dir is None:
            raise ValueError(f"--from {config.start}: self-improvement trains a small policy; give a bundle or policy directory")
        return str(choice.policy_dir)
    return str(Path(config.out, f"round-{number}", "policy"))


def start_settings(config: ImproveConfig) -> dict:
    """The start bundle's reasoning settings (answer, step budget, denoising steps, sampling): every
    round samples and is evaluated with them, though it loads a bare policy directory."""
    from vot.components import reasoning_settings

    return reasoning_settings(config.start, config.task)


def _sketcher(config: ImproveConfig, number: int) -> str:
    """The sketcher after round ``number`` (0: the start's: its bundle's, or ``--sketcher``):
    the one round ``number + 1`` samples with and round ``number`` is evaluated with."""
    if config.sketcher_steps and number >= 1:
        return str(Path(config.out, f"round-{number}", "sketcher"))
    from vot.components import resolve_policy, sketcher_of

    return sketcher_of(resolve_policy(config.start, config.task), config.sketcher)


def _imagined_task(config: ImproveConfig) -> str:
    """The task whose chains the start policy writes (another version of ``config.task`` maybe)."""
    from vot.components import imagined_task, resolve_policy

    return imagined_task(resolve_policy(config.start, config.task), config.task)


def verified_transitions(pairs) -> dict:
    """size -> `imagegen.data.Transitions` of kept (problem, chain) pairs: each sketch read back and
    rendered clean under the rules of the task the chain was imagined under, from the chain's start; a
    chain stops contributing at an unreadable or missing sketch."""
    import numpy as np

    from imagegen.data import Transitions
    from vot.verifiers import chain_task

    by_size: dict[int, tuple[list, list, list]] = {}
    for problem, chain in pairs:
        task = tasks.get(chain_task(problem, chain))
        prev = np.asarray(task.render(task.initial_state(problem)))
        bucket = by_size.setdefault(int(problem.meta["size"]), ([], [], []))
        for step in chain.steps:
            if step.is_answer:
                continue
            if step.sketch is None:  # a sketch that was not kept: the next pair would span two thoughts
                break
            try:
                following = np.asarray(task.render(task.read(step.sketch)))
            except ValueError:
                break
            bucket[0].append(prev), bucket[1].append(following), bucket[2].append(step.thought)
            prev = following
    return {size: Transitions(np.stack(p), np.stack(n), t) for size, (p, n, t) in by_size.items() if t}


def train_sketcher_round(config: ImproveConfig, number: int) -> Path:
    """Fine-tune the previous round's sketcher on every round's verified transitions so far
    (``round-k/transitions.npz``); returns its directory."""
    import shutil

    from imagegen import load_sketcher
    from imagegen.train import SketcherTrainConfig, train_sketcher

    here = Path(config.out, f"round-{number}")
    files = [str(Path(config.out, f"round-{k}", "transitions.npz")) for k in range(1, number + 1)]
    files = [f for f in files if Path(f).is_file()]
    parent = _sketcher(config, number - 1)
    name = _imagined_task(config) if parent == "default" else parent
    recipe = Path(str(load_sketcher(name).name_or_path), "train_config.json")
    recipe = json.loads(recipe.read_text()) if recipe.is_file() else {}
    if (here / "sketcher").exists():
        shutil.rmtree(here / "sketcher")  # a round killed while training it: train again
    return train_sketcher(SketcherTrainConfig(
        task=_imagined_task(config), preset=recipe.get("preset", "tiny"), steps=config.sketcher_steps,
        out=str(here / "sketcher"), seed=config.seed + number, problems_per_size=config.sketcher_replay, init_from=name,
        device=config.device, condition_noise=recipe.get("condition_noise", 0.0),
        change_weight=recipe.get("change_weight", 10.0), checkpoint_every=10**9, transitions=files,
        learning_rate=SKETCHER_FINE_TUNE_LR, warmup=config.sketcher_steps // 10), progress=False)


def evaluate(config: ImproveConfig, policy: str, task, sketcher: str | None = None, shard: Shard = Shard()) -> dict:
    """Greedy test-split accuracy of ``policy`` by size (with ``sketcher``, default
    ``config.sketcher``, and the start's settings), each process taking its share of the problems."""
    from vot.components import build_reasoner

    from vot.reasoner import greedy_correct

    reasoner = build_reasoner(task.id, policy=policy, sketcher=sketcher or config.sketcher, seed=config.seed,
                              device=config.device, **start_settings(config))
    accuracy = {}
    for size in eval_sizes(config, task):
        mine = shard.pick(generate_split(task, "test", size, config.eval_count, 0))
        parts = shard.gather(greedy_correct(reasoner, mine, config.batch))  # None off the main process
        if parts is not None:
            accuracy[str(size)] = rate([c for part in parts for c in part]).to_json()
    return accuracy


def run_round(config: ImproveConfig, number: int, log=print, shard: Shard = Shard()) -> dict:
    """Sample, filter, train and evaluate round ``number`` (1-based) into ``out/round-<number>``
    (sampling and evaluation over the launched processes; training and writing on the main one,
    whose record is the round's: the others return theirs incomplete and read ``round.json``)."""
    from vot.chain import read_problem_chains, write_problem_chains
    from vot.components import build_reasoner
    task = tasks.get(config.task)
    here = Path(config.out, f"round-{number}")
    sizes = round_sizes(config, number - 1)
    began = time.perf_counter()
    start_policy = _policy_dir(config, number - 1)
    kept_path = here / "kept.jsonl"
    if shard.is_main:
        if kept_path.exists():  # a round killed after sampling: sample again from scratch (seeded, identical)
            kept_path.unlink()
        here.mkdir(parents=True, exist_ok=True)
    shard.wait()
    reasoner = build_reasoner(task.id, policy=start_policy, sketcher=_sketcher(config, number - 1),
                              seed=config.seed + number, device=config.device, **start_settings(config))
    from vot.components import resolve_device

    chain_filter = ChainFilter(config.filter, config.vote_share, resolve_device(config.device))
    counts = {"problems": 0, "kept": 0, "kept_right": 0, "sampled": 0, "sampled_right": 0, "by_size": {}}
    for size in sizes:
        labelled = generate_split(task, "train", size, config.problems_per_size, config.seed + 1000 * number)
        mine = shard.pick(list(range(len(labelled))))  # this process's problems
        found, sampled, sampled_right = [], 0, 0  # found: (problem index, blind problem, kept chain, right)
        for offset in range(0, len(mine), config.batch):
            chunk = [labelled[i] for i in mine[offset:offset + config.batch]]
            unlabelled = [replace(p, answer=None) for p in chunk]
            pools = reasoner.run(unlabelled, config.n)
            for index, blind, gold, pool in zip(mine[offset:offset + config.batch], unlabelled, chunk, pools):
                sampled += len(pool)
                sampled_right += sum(bool(c.answer is not None and task.check(gold, c.answer).correct) for c in pool)
                for chain in chain_filter.keep(blind, pool, gold):
                    found.append((index, blind, chain, task.check(gold, chain.answer).correct))  # right: after the fact
            if shard.is_main:
                done = f"{offset + len(chunk)}/{len(labelled)}" if shard.world == 1 else \
                    f"{offset + len(chunk)}/{len(mine)} of this process's"
                log(f"round {number} size {size}: sampled {done} problems, kept {len(found)}")
        parts = shard.gather((found, sampled, sampled_right)) or []  # on the main process only
        found = sorted((item for part in parts for item in part[0]), key=lambda item: item[0])  # problem order
        counts["sampled"] += sum(part[1] for part in parts)
        counts["sampled_right"] += sum(part[2] for part in parts)
        if shard.is_main:
            write_problem_chains(kept_path, [(blind, chain) for _, blind, chain, _ in found])
        kept_size, right_size = len(found), sum(right for *_, right in found)
        counts["problems"] += len(labelled)
        counts["kept"] += kept_size
        counts["kept_right"] += right_size
        counts["by_size"][str(size)] = {"problems": len(labelled), "kept": kept_size, "kept_right": right_size}
    sampled_seconds = time.perf_counter() - began
    counts = shard.broadcast(counts)  # the main process's totals, so every process stops alike
    if counts["kept"] == 0:
        raise ValueError(f"round {number}: the {config.filter} filter kept no chain of {counts['problems']} problems")
    previous = [str(Path(config.out, f"round-{k}", "kept.jsonl")) for k in range(1, number)]
    sketcher, transitions = _sketcher(config, number), 0
    if shard.is_main:
        if (here / "policy").exists():
            import shutil

            shutil.rmtree(here / "policy")  # a round killed while training: train again from its start
        train = run_alone if shard.world > 1 else (lambda fn, **kwargs: fn(**kwargs))  # `run_alone`: why
        train(train_on_chains, task_id=task.id, start_policy=start_policy, chain_files=previous + [str(kept_path)],
              out=str(here / "policy"), steps=config.steps, seed=config.seed + number, chain_share=config.chain_share,
              gold_problems_per_size=config.gold_problems_per_size, device=config.device, sketcher=config.sketcher)
        if config.sketcher_steps:
            from imagegen.data import save_transitions

            verified = verified_transitions(read_problem_chains(kept_path))
            save_transitions(here / "transitions.npz", verified)
            train(train_sketcher_round, config=config, number=number)
            transitions = sum(len(t) for t in verified.values())
    shard.wait()  # the round's policy (and sketcher) are written
    trained_seconds = time.perf_counter() - began - sampled_seconds
    record = {
        "round": number, "sizes": sizes, "filter": config.filter, "policy": str(here / "policy"),
        "problems": counts["problems"], "sampled_chains": counts["sampled"], "kept": counts["kept"],
        "coverage": counts["kept"] / counts["problems"],
        "precision": rate([True] * counts["kept_right"] + [False] * (counts["kept"] - counts["kept_right"])).to_json(),
        "sampled_accuracy": counts["sampled_right"] / max(counts["sampled"], 1),
        "by_size": counts["by_size"],
        "sketcher": str(sketcher), "sketcher_transitions": transitions,
        "test_accuracy": evaluate(config, str(here / "policy"), task, str(sketcher), shard),
        "seconds": {"sampling": round(sampled_seconds, 1), "training": round(trained_seconds, 1),
                    "total": round(time.perf_counter() - began, 1)},
    }
    if shard.is_main:
        (here / "round.json").write_text(json.dumps(record, indent=2))
    shard.wait()
    return record


def eval_sizes(config: ImproveConfig, task) -> list[int]:
    return list(config.eval_sizes) or sorted(set(task.in_distribution) | set(config.sizes))


def improve(config: ImproveConfig, log=print, command: str | None = None) -> Path:
    """Run (or resume) every round; returns ``config.out``."""
    task = tasks.get(config.task)
    config.task = task.id
    parts = check_filter(task, config.filter)
    if min(config.rounds, config.n, config.problems_per_size, config.steps, config.batch, config.sizes_per_round,
           config.eval_count, config.gold_problems_per_size) < 1:
        raise ValueError("--rounds, --n, --problems, --steps, --sizes-per-round and --eval-count must be positive")
    if not 0 < config.chain_share <= 1 or not 0 < config.vote_share <= 1:
        raise ValueError(f"--chain-share and --vote-share must be in (0, 1], got {config.chain_share} and {config.vote_share}")
    if config.sketcher_steps < 0 or config.sketcher_replay < 1:
        raise ValueError(f"--sketcher-steps must be >= 0 and the sketcher replay positive, got {config.sketcher_steps}, "
                         f"{config.sketcher_replay}")
    if config.sketcher_steps and ("consistency" not in parts or _sketcher(config, 0) in ("oracle", "blank")):
        raise ValueError("--sketcher-steps trains the diffusion sketcher on verified sketches: it needs a filter with "
                         "consistency (which checks every sketch) and a diffusion sketcher, not the oracle or blank one")
    if "learned" in parts:
        from vot.learned_verifier import shipped_dir

        shipped_dir(task.id)  # refused now, not after a round of sampling, when there is none
    if len(config.sizes) < config.rounds * config.sizes_per_round:
        raise ValueError(f"{config.rounds} rounds of {config.sizes_per_round} size(s) need {config.rounds * config.sizes_per_round} "
                         f"sizes, --sizes gives {len(config.sizes)}")
    too_big = [s for s in config.sizes + eval_sizes(config, task) if not task.min_size <= s <= task.max_size]
    if too_big:
        raise ValueError(f"{task.id} takes sizes {task.min_size}-{task.max_size}, not {too_big}")
    _policy_dir(config, 0)  # an unknown --from is refused before anything is written
    out = Path(config.out)
    if out.is_file():
        raise ValueError(f"--out {out} is a file")
    if out.exists() and any(out.iterdir()) and not config.resume:
        raise ValueError(f"{out} is not empty; pass --resume to continue it or choose another --out")
    saved = out / "config.json"
    if config.resume and saved.is_file():
        free = ("resume", "command", "batch")  # batching changes no result, so a run killed for memory resumes smaller
        before = ADDED | {k: v for k, v in json.loads(saved.read_text()).items() if k not in free}
        changed = sorted(k for k, v in asdict(config).items() if k not in free and before.get(k) != v)
        if changed:
            raise ValueError(f"--resume with other settings than {out}'s run ({', '.join(changed)}); use its own or a new --out")
    shard = Shard.current()
    shard.wait()  # every process has checked --out before the main one writes into it
    say = log if shard.is_main else (lambda _: None)
    if shard.is_main:
        out.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(asdict(config) | {"command": command}, indent=2))
    records = []
    start = out / "round-0.json"
    if not start.exists():
        say(f"round 0: evaluating {config.start}" + (f" over {shard.world} processes" if shard.world > 1 else ""))
        accuracy = evaluate(config, _policy_dir(config, 0), task, _sketcher(config, 0), shard)
        if shard.is_main:
            start.write_text(json.dumps({"round": 0, "policy": _policy_dir(config, 0), "test_accuracy": accuracy}, indent=2))
        shard.wait()
    records.append(json.loads(start.read_text()))
    for number in range(1, config.rounds + 1):
        done = out / f"round-{number}" / "round.json"
        if not done.exists():
            run_round(config, number, say, shard)
        records.append(json.loads(done.read_text()))
        if shard.is_main:
            write_outputs(out, config, records, command)
        r = records[-1]
        say(f"round {number} (sizes {r['sizes']}): kept {r['kept']}/{r['problems']}, precision "
            f"{100 * r['precision']['value']:.1f}%; test " + ", ".join(
                f"{s}: {100 * v['value']:.0f}" for s, v in r["test_accuracy"].items()))
    shard.wait()
    return out


def write_outputs(out: Path, config: ImproveConfig, records: list[dict], command: str | None) -> None:
    """``rounds.jsonl``, ``accuracy.png`` and the card ``README.md`` from the finished rounds."""
    (out / "rounds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    plot_rounds(records, out / "accuracy.png", f"{config.task}: greedy test accuracy by size ({config.filter} filter)")
    sizes = list(records[0]["test_accuracy"])
    head = "| round | trained on sizes | kept / problems | precision of kept | " + " | ".join(f"size {s}" for s in sizes) + " |"
    rows = [head, "|" + "---|" * (4 + len(sizes))]
    for r in records:
        kept = f"{r['kept']} / {r['problems']}" if "kept" in r else "start"
        precision = f"{100 * r['precision']['value']:.1f} [{100 * r['precision']['low']:.1f}, {100 * r['precision']['high']:.1f}]" if "precision" in r else ""
        cells = " | ".join(f"{100 * r['test_accuracy'][s]['value']:.0f}" for s in sizes)
        rows.append(f"| {r['round']} | {r.get('sizes', '')} | {kept} | {precision} | {cells} |")
    vote = f" (vote share >= {config.vote_share})" if "vote" in parse_filter(config.filter) else ""
    sketcher_note = (f"; each round also fine-tuned the sketcher {config.sketcher_steps} steps on its verified transitions "
                     "(`round-k/sketcher`), and the next round sampled with it") if config.sketcher_steps else ""
    (out / "README.md").write_text(f"""# self-improvement of {config.task} from {config.start}

Made by `{command or 'vot improve'}`. Each round samples {config.n} chains on {config.problems_per_size} unlabelled
train-split problems per size, keeps at most one chain per problem by the `{config.filter}` filter{vote}, and continues training the policy for {config.steps} steps ({config.chain_share:.0%}
kept chains, the rest gold traces of the training sizes). Precision: the share of kept chains whose answer is right,
measured after the fact. Test accuracy: greedy, {config.eval_count} test problems per size, sketcher `{config.sketcher}`{sketcher_note}.

{chr(10).join(rows)}

![accuracy by size per round](accuracy.png)

The policy of round k is `round-k/policy`; each round's numbers are in `round-k/round.json`.
""")


def plot_rounds(records: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [int(s) for s in records[0]["test_accuracy"]]
    figure, axis = plt.subplots(figsize=(6, 3.6))
    markers, styles = "osD^vP*X", ["-", "--", "-.", ":"]
    for k, r in enumerate(records):  # offset a little, and marked differently, so coinciding rounds stay visible
        values = [100 * r["test_accuracy"][str(s)]["value"] for s in sizes]
        shift = 0.06 * (k - (len(records) - 1) / 2)
        axis.plot([s + shift for s in sizes], values, marker=markers[k % len(markers)], linestyle=styles[k % len(styles)],
                  label=f"round {r['round']}" if r["round"] else "start")
    axis.set(xlabel="size", ylabel="greedy accuracy, %", ylim=(0, 102), title=title)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def command_line() -> str:
    return "vot " + " ".join(shlex.quote(a) for a in sys.argv[1:])
