"""Train the ``learned`` verifier (`vot.learned_verifier`) of an MCQ task: ``vot train verifier --task maze``.

Data: the shipped bundle's own sampled chains (its sampling temperature) on train-split problems of
the task's in-distribution sizes and, as they hold most of the policy's mistakes, its
out-of-distribution sizes. Labels, automatic: a non-answer step is right when the `consistency`
verifier scores it 1.0 (its sketch reads back as the simulator's state after its thought from the
previous sketch, and the thought is the action the prompt states there); the answer step is right
when the answer is correct (gold is used for the labels only, never as an input). Wrong steps are
rare, so batches are drawn class-balanced. All randomness goes through one seeded ``torch.Generator``.

Evaluation on val-split problems of the same sizes, ``val_chains`` sampled chains each: step
accuracy and AUC, and chain selection (the chain with the highest min-step score; ties go to the
first) by the learned verifier against the consistency verifier, the first sampled chain and the
greedy chain.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import tasks
from tasks.splits import generate_split
from vot.learned_verifier import (LearnedVerifier, VerifierConfig, VerifierModel, VisionCache, collate,
                                  encoder_fingerprint, save_verifier, step_examples)
from vot.verifiers import ConsistencyVerifier, aggregate

SHIPPED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "train_summary.json", "README.md")


@dataclass
class VerifierTrainConfig:
    """What ``vot train verifier`` does. ``out`` defaults to ``checkpoints/verifier-<task id>``."""

    task: str
    bundle: str | None = None  # default: the shipped bundle of the task
    chains_per_problem: int = 4
    problems_per_size: int = 25  # train problems per size, every in- and out-of-distribution size
    val_problems_per_size: int = 25
    val_chains: int = 4
    steps: int = 600
    batch: int = 64
    lr: float = 2e-3
    width: int = 64
    layers: int = 2
    seed: int = 0
    out: str | None = None
    fp16: bool = True
    resume: bool = False
    device: str = "auto"
    checkpoint_every: int = 200
    sizes: list[int] = field(default_factory=list)  # default: in-distribution + out-of-distribution


def step_labels(problem, chain, consistency: ConsistencyVerifier) -> list[float]:
    """The automatic labels of a chain's steps (uses gold for the answer step: training only)."""
    task = tasks.get(problem.task)
    scores = consistency.step_scores(problem, chain)
    return [float(chain.answer is not None and task.check(problem, chain.answer).correct) if step.is_answer else score
            for step, score in zip(chain.steps, scores)]


def auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """ROC AUC by ranks (ties averaged); None when a class is missing."""
    pos, neg = labels == 1, labels == 0
    if not pos.any() or not neg.any():
        return None
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * neg.sum()))


def step_metrics(scores: np.ndarray, labels: np.ndarray) -> dict:
    predicted = scores >= 0.5
    right, wrong = labels == 1, labels == 0
    return {"steps": int(len(labels)), "right_steps": int(right.sum()), "wrong_steps": int(wrong.sum()),
            "accuracy": float((predicted == right).mean()) if len(labels) else None,
            "accuracy_on_right": float(predicted[right].mean()) if right.any() else None,
            "accuracy_on_wrong": float((~predicted[wrong]).mean()) if wrong.any() else None,
            "auc": auc(scores, labels)}


def _sample(reasoner, task, split, sizes, count, n, seed, log, skipped: list | None = None):
    """Sampled chains per problem. A batch the reasoner refuses (e.g. the sketcher rejecting an
    empty thought) is rerun problem by problem (chain seeds do not depend on batching) and the
    refused problems are left out, their ids and errors appended to ``skipped``."""
    problems, chains = [], []
    for size in sizes:
        started = time.time()
        ps = generate_split(task, split, size, count, seed)
        try:
            pools = reasoner.run(ps, n)
        except ValueError:
            kept, pools = [], []
            for problem in ps:
                try:
                    pools += reasoner.run([problem], n)
                    kept.append(problem)
                except ValueError as error:
                    log(f"skipped {problem.id}: {error}")
                    if skipped is not None:
                        skipped.append({"problem": problem.id, "error": str(error)})
            ps = kept
        problems += ps
        chains += pools
        log(f"sampled {len(ps)} x {n} {split} chains at size {size} in {time.time() - started:.0f}s")
    return problems, chains


def train_verifier(config: VerifierTrainConfig, log=None, progress: bool | None = None) -> Path:
    """Sample, label, train, evaluate; write the verifier directory and return it. The run
    (checkpoints, ``--resume``, log, progress) is `imagegen.trainer.TrainingRun`; a resumed run
    samples its (seeded, hence identical) chains again and continues training from the checkpoint."""
    import vot
    from imagegen.trainer import TrainingRun
    from vot.bundle import resolve
    from vot.learned_verifier import bundle_encoder

    task = tasks.get(config.task)
    if task.kind != "mcq":
        raise ValueError(f"the learned verifier is trained on MCQ tasks, not {task.id} ({task.kind})")
    bundle = config.bundle or resolve(task.id).name
    out = Path(config.out or f"checkpoints/verifier-{task.id}")
    sizes = list(config.sizes) or list(task.in_distribution + task.out_of_distribution)
    run = TrainingRun(out, steps=config.steps, description=f"verifier {task.id}", resume=config.resume,
                      device=config.device, checkpoint_every=config.checkpoint_every, progress=progress, log_every=1)
    say = log or run.say
    started = time.time()
    reasoner = vot.load(bundle, seed=config.seed)
    tokenizer = reasoner.policy.tokenizer
    encoder = bundle_encoder(bundle)
    vision = VisionCache(encoder)
    consistency = ConsistencyVerifier()

    # --- data
    skipped: list[dict] = []
    problems, chains = _sample(reasoner, task, "train", sizes, config.problems_per_size, config.chains_per_problem,
                               config.seed, say, skipped)
    examples, labels, answers = [], [], []
    for problem, pool in zip(problems, chains):
        for chain in pool:
            examples += step_examples(problem, chain, tokenizer, vision)
            labels += step_labels(problem, chain, consistency)
            answers += [step.is_answer for step in chain.steps]
    y = torch.tensor(labels)
    n_right, n_wrong = int(y.sum()), int((1 - y).sum())
    say(f"{len(labels)} train steps: {n_right} right, {n_wrong} wrong")
    if n_wrong == 0 or n_right == 0:
        run.close()
        raise ValueError(f"the train chains have {n_right} right and {n_wrong} wrong steps; need both (sample more)")
    sampling_seconds = time.time() - started
    run.log({"event": "data", "steps": len(labels), "right": n_right, "wrong": n_wrong,
             "sampling_seconds": round(sampling_seconds, 1)})

    # --- model and training: each step's class-balanced draw is keyed by (seed, step), so resume is exact
    model_config = VerifierConfig(task=task.id, bundle=bundle, vocab_size=len(tokenizer),
                                  vision_dim=int(examples[0].current.shape[-1]), encoder_sha256=encoder_fingerprint(encoder),
                                  width=config.width, layers=config.layers)
    model = VerifierModel(model_config).init_weights(torch.Generator().manual_seed(config.seed))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    weights = torch.where(y == 1, 0.5 / n_right, 0.5 / n_wrong)  # class-balanced draws
    model, optimizer, schedule = run.prepare(model, optimizer, run.cosine(optimizer, min(50, config.steps // 10), config.steps))
    model.train()
    for step in run.steps(run.restore()):
        key = int(np.random.default_rng([config.seed, step]).integers(2**62))
        rows = torch.multinomial(weights, config.batch, replacement=True, generator=torch.Generator().manual_seed(key))
        batch = collate([examples[i] for i in rows.tolist()], run.device)
        with run.accelerator.autocast():
            logits = model(**batch)
        loss = F.binary_cross_entropy_with_logits(logits.float(), y[rows].to(run.device))
        run.optimizer_step(loss, model.parameters(), optimizer, schedule)
        run.record(step, loss, schedule)
        if (step + 1) % 100 == 0:
            say(f"step {step + 1}: loss {float(loss.detach()):.4f}")
    model = run.accelerator.unwrap_model(model).eval().to("cpu")
    records = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
    by_step = {r["step"]: r["loss"] for r in records if "loss" in r}  # a resumed run logs its redone steps again
    losses = [by_step[k] for k in sorted(by_step)]
    training_seconds = time.time() - started - sampling_seconds

    # --- evaluation: round-trip through the saved (fp16) weights, then score val chains
    save_verifier(out, model, tokenizer, fp16=config.fp16)
    verifier = LearnedVerifier(out)
    val_problems, val_chains = _sample(reasoner, task, "val", sizes, config.val_problems_per_size, config.val_chains,
                                       config.seed, say, skipped)
    greedy = []
    for problem in val_problems:  # one by one: a refused greedy chain counts as wrong
        try:
            greedy += [reasoner.run([problem], 1, greedy=True)[0][0]]
        except ValueError as error:
            say(f"greedy chain of {problem.id} refused: {error}")
            skipped.append({"problem": problem.id, "greedy": True, "error": str(error)})
            greedy.append(None)
    summary = evaluate(task, val_problems, val_chains, greedy, verifier, consistency)
    summary.update(config=asdict(config) | {"out": str(out), "bundle": bundle, "sizes": sizes}, skipped=skipped,
                   train={"problems": len(problems), "chains": sum(map(len, chains)), "steps": len(labels),
                          "right_steps": n_right, "wrong_steps": n_wrong,
                          "wrong_answer_steps": int(sum(1 - l for l, a in zip(labels, answers) if a)),
                          "final_loss": float(np.mean(losses[-100:])), "first_loss": float(np.mean(losses[:20]))},
                   parameters=sum(p.numel() for p in model.parameters()),
                   seconds={"sampling": round(sampling_seconds, 1), "training": round(training_seconds, 1),
                            "total": round(time.time() - started, 1)})
    run.finish(summary)
    (out / "README.md").write_text(model_card(summary))
    say(json.dumps({k: summary[k] for k in ("val_steps", "selection")}, indent=2))
    return out


def evaluate(task, problems, pools, greedy, verifier, consistency) -> dict:
    """Step metrics of ``verifier`` on the pools' automatic labels, and chain selection accuracy."""
    scores, labels, kinds = [], [], []
    picks = {"learned": 0, "consistency": 0, "first": 0, "greedy": 0, "oracle_pass@k": 0}
    by_size: dict[int, dict] = {}
    for problem, pool, top in zip(problems, pools, greedy):
        learned = [verifier.step_scores(problem, c) for c in pool]
        checked = [consistency.step_scores(problem, c) for c in pool]
        for chain, s in zip(pool, learned):
            scores += s
            labels += step_labels(problem, chain, consistency)
            kinds += [step.is_answer for step in chain.steps]
        correct = [chain.answer is not None and task.check(problem, chain.answer).correct for chain in pool]
        chosen = {"learned": correct[int(np.argmax([aggregate(s, "min") for s in learned]))],
                  "consistency": correct[int(np.argmax([aggregate(s, "min") for s in checked]))],
                  "first": correct[0],
                  "greedy": top is not None and top.answer is not None and task.check(problem, top.answer).correct,
                  "oracle_pass@k": any(correct)}
        size = by_size.setdefault(int(problem.meta["size"]), {k: 0 for k in picks} | {"problems": 0})
        size["problems"] += 1
        for k, v in chosen.items():
            picks[k] += int(v)
            size[k] += int(v)
    s, l, a = np.array(scores), np.array(labels), np.array(kinds)
    n = len(problems)
    return {"val_steps": {"all": step_metrics(s, l), "thought_steps": step_metrics(s[~a], l[~a]),
                          "answer_steps": step_metrics(s[a], l[a])},
            "selection": {"problems": n, "chains_per_problem": len(pools[0]) if pools else 0,
                          "correct": picks, "accuracy": {k: v / n for k, v in picks.items()}, "by_size": by_size}}


def model_card(summary: dict) -> str:
    c, sel, steps = summary["config"], summary["selection"], summary["val_steps"]
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"
    rows = "\n".join(f"| {k} | {v} / {sel['problems']} | {v / sel['problems']:.3f} |" for k, v in sel["correct"].items())
    return f"""# learned verifier for {summary['config']['task']}

A small process reward model (`vot.learned_verifier`, {summary['parameters']:,} parameters): P(step right) from
the step's thought, the action the prompt states there, and the vision tokens (bundle `{c['bundle']}`'s frozen
encoder) of the previous and the current sketch; the answer step reads the answer, the options and the last sketch.
Never sees the gold answer. Load it by name: `vot.verifiers.get_verifier("learned")`.

Trained with

    vot train verifier --task {c['task']} --chains-per-problem {c['chains_per_problem']} --problems-per-size {c['problems_per_size']} --steps {c['steps']} --seed {c['seed']}

on {summary['train']['chains']} sampled chains of the shipped policy ({summary['train']['problems']} train-split problems,
sizes {c['sizes']}): {summary['train']['steps']} steps, {summary['train']['wrong_steps']} labelled wrong (automatic labels:
the consistency verifier for thoughts, gold correctness for answers). {summary['seconds']['total']:.0f} s on CPU.

## Validation (val split, sizes {c['sizes']}, {sel['chains_per_problem']} sampled chains per problem)

Steps: accuracy {fmt(steps['all']['accuracy'])}, AUC {fmt(steps['all']['auc'])} ({steps['all']['steps']} steps,
{steps['all']['wrong_steps']} wrong); thought steps AUC {fmt(steps['thought_steps']['auc'])}, answer steps AUC
{fmt(steps['answer_steps']['auc'])}.

Chain selection (highest min-step score, ties to the first chain):

| selector | correct | accuracy |
|---|---|---|
{rows}
"""


def ship(out: str | Path, bundle_dir: str | Path) -> Path:
    """Copy a trained verifier's files into ``bundle_dir/verifier``."""
    target = Path(bundle_dir) / "verifier"
    target.mkdir(parents=True, exist_ok=True)
    for name in SHIPPED_FILES:
        shutil.copy2(Path(out) / name, target / name)
    return target
