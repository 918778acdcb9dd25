"""Train a `PolicyModel` on gold traces (``vot train policy``).

Teacher-forced, loss on the text the policy writes. In ``vot`` mode a share of the training
problems (``sketcher_share``) carry sketches from the trained sketcher's own rollout instead of
gold renders, so the policy learns to read imperfect imagination. The run (accelerate, warmup +
cosine LR, checkpoints every ``checkpoint_every`` steps, ``--resume``, the log and the progress bar)
is `imagegen.trainer.TrainingRun`; the batch of a step depends only on the seed and the step. A
greedy evaluation on validation problems runs every ``eval_every`` steps through the real loop.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

import tasks
from imagegen.trainer import TrainingRun, latest_checkpoint, step_of
from tasks.core import Problem
from tasks.splits import generate_split
from vot.lm.model import PolicyModel, PolicyShape, PolicySpec
from vot.lm.presets import get_policy_preset
from vot.lm.sequences import Example, build_example, corpus
from vot.lm.tokenizer import WordTokenizer


@dataclass
class PolicyTrainConfig:
    task: str
    mode: str = "vot"
    preset: str = "tiny"
    steps: int | None = None  # default: the preset's
    out: str = "checkpoints/policy"
    seed: int = 0
    problems_per_size: int | None = None  # default: the preset's
    sizes: list[int] | None = None  # training sizes (default: the task's in-distribution sizes; validation stays on those)
    sketcher: str | None = "default"  # sketcher for vot-mode rollouts ("default", a path, or None for gold only)
    sketcher_share: float = 0.2  # the CLI's default too
    eval_every: int = 500
    eval_count: int = 16  # validation problems per size
    stop_at_accuracy: float | None = None  # end training early once greedy val accuracy reaches this
    checkpoint_every: int = 250
    resume: bool = False
    device: str = "auto"
    stop_after: int | None = None  # save a checkpoint at this step and return (time-sliced training)
    answer_weight: float = 1.0  # loss weight of the answer's tokens relative to the thoughts'
    canvas_share: float = 0.0  # share of problems whose images are padded by 1-2 extra patches (larger grids)
    shape: dict | None = None  # overrides of the preset's `PolicyShape` fields (tests, ablations)
    batch_size: int | None = None  # default: the preset's
    init_from: str | None = None  # a trained policy directory to start from (warm start; see `warm_start`)
    index_shift_share: float = 0.5  # share of examples whose index tokens <k> are renumbered <k+o> (`shift_indices`)
    chains: list[str] = field(default_factory=list)  # files of (problem, chain) pairs to train on (`vot.chain.write_problem_chains`)
    chain_share: float = 0.5  # with ``chains``: the share of batches drawn from them (the rest replays gold traces)
    position_gap: int = 0  # > 0: half the rows skip up to this many positions before each index token (`gap_positions`)


@dataclass
class Bucket:
    """Examples of one image size, padded to one length: ids/labels (N, L), images (N, K, H, W, 3)."""

    ids: np.ndarray
    segments: np.ndarray
    labels: np.ndarray
    answer: np.ndarray
    lengths: np.ndarray
    images: list[np.ndarray]  # per example: (K_i, H, W, 3) uint8
    canvas: int = 0  # pad the pixels (bottom/right, mid grey) to this side before encoding; 0: no extra padding
    weight: float = 1.0  # how often an example of this bucket is drawn, relative to the others'
    exact: list[np.ndarray] | None = None  # per example: (K_i,) bool, the images that are exact renders

    def __len__(self) -> int:
        return len(self.lengths)


def _bucket(examples: list[Example], tokenizer: WordTokenizer, canvas: int = 0) -> Bucket:
    lengths = np.array([len(e.ids) for e in examples])
    ids = np.zeros((len(examples), lengths.max()), dtype=np.int64)
    segments = np.zeros_like(ids)
    labels = np.full((len(examples), lengths.max()), -100, dtype=np.int64)
    answer = np.zeros(ids.shape, dtype=bool)
    for row, example in enumerate(examples):
        ids[row, :lengths[row]], labels[row, :lengths[row]] = example.ids, example.labels
        segments[row, :lengths[row]] = tokenizer.segments(example.ids)
        answer[row, :lengths[row]] = example.answer
    return Bucket(ids, segments, labels, answer, lengths, [np.stack(e.images) for e in examples], canvas,
                  exact=[np.array(e.exact, dtype=bool) for e in examples])


def sketcher_rollouts(problems, sketcher, seed: int) -> list[list]:
    """The sketcher's own rollout of each problem's gold thoughts: each sketch conditioned on the
    previous generated one (as at inference). Problems are batched step by step."""
    if not problems:
        return []
    task = tasks.get(problems[0].task)
    traces = [[s for s in task.trace(p, "visual") if s.action is not None] for p in problems]
    current = [p.image for p in problems]
    out: list[list] = [[] for _ in problems]
    generator = torch.Generator().manual_seed(seed)
    for step in range(max(len(t) for t in traces)):
        rows = [i for i, t in enumerate(traces) if step < len(t)]
        for start in range(0, len(rows), 256):
            chunk = rows[start:start + 256]
            images = sketcher.sketch([current[i] for i in chunk], [traces[i][step].thought for i in chunk],
                                     generator=generator)
            for i, image in zip(chunk, images):
                out[i].append(image)
                current[i] = image
    return out


def training_sizes(config: PolicyTrainConfig) -> tuple[int, ...]:
    """The sizes a run trains on: ``config.sizes`` (a curriculum of smaller problems, for chains whose
    rules are local) or the task's in-distribution sizes."""
    task = tasks.get(config.task)
    if config.sizes is None:
        return tuple(task.in_distribution)
    if not config.sizes:
        raise ValueError("sizes is empty; give at least one training size, or None for the in-distribution sizes")
    for size in config.sizes:
        task.check_size(size)
    return tuple(int(size) for size in config.sizes)


def training_problems(config: PolicyTrainConfig, problems_per_size: int) -> dict[int, list[Problem]]:
    """The train-split problems of every `training_sizes` size; raises for a size the task refuses
    or lacks ``problems_per_size`` distinct problems for."""
    task = tasks.get(config.task)
    return {size: generate_split(task, "train", size, problems_per_size, config.seed) for size in training_sizes(config)}


def build_data(config: PolicyTrainConfig, tokenizer: WordTokenizer, patch: int,
               problems_by_size: dict[int, list[Problem]], log) -> dict[str, Bucket]:
    """Buckets of ``problems_by_size`` (`training_problems`) keyed ``"<size>"``, plus ``"<size>+<e>"`` for the ``canvas_share`` of problems whose
    images are padded by ``e`` in {1, 2} extra patches a side. The padding shows the policy grids of
    vision tokens larger than the in-distribution sizes give (a 9x9 room is a 5x5 grid of tokens where
    7-8 are 4x4); without it the shipped minibehavior policy of session 2 broke on every larger room."""
    task = tasks.get(config.task)
    rng = np.random.default_rng([config.seed, 11])
    canvas_rng = np.random.default_rng([config.seed, 12])
    sketcher = None
    if config.mode == "vot" and config.sketcher and config.sketcher_share > 0:
        from imagegen import load_sketcher

        sketcher = load_sketcher(task.id if config.sketcher == "default" else config.sketcher)
    data = {}
    for size, problems in problems_by_size.items():
        imagined = {}
        if sketcher is not None:
            chosen = [i for i in range(len(problems)) if rng.random() < config.sketcher_share]
            began = time.perf_counter()
            for i, sketches in zip(chosen, sketcher_rollouts([problems[i] for i in chosen], sketcher, config.seed + size)):
                imagined[i] = sketches
            log({"event": "sketcher_rollouts", "size": size, "problems": len(chosen),
                 "seconds": round(time.perf_counter() - began, 1)})
        side = -(-problems[0].image.size[0] // patch) * patch  # the side the encoder pads to anyway
        extra = [int(canvas_rng.integers(1, 3)) if canvas_rng.random() < config.canvas_share else 0 for _ in problems]
        for e in sorted(set(extra)):
            canvas = side + e * patch if e else 0
            examples = [build_example(p, config.mode, tokenizer, patch, imagined.get(i), canvas)
                        for i, p in enumerate(problems) if extra[i] == e]
            data[f"{size}+{e}" if e else str(size)] = _bucket(examples, tokenizer, canvas)
    if config.chains:
        add_chain_buckets(data, config, tokenizer, patch, log)
    return data


def add_chain_buckets(data: dict[str, Bucket], config: PolicyTrainConfig, tokenizer: WordTokenizer, patch: int,
                      log) -> None:
    """Buckets ``"chains-<size>"`` of the (problem, chain) pairs in ``config.chains``, weighted so that
    a ``chain_share`` of the batches comes from them and the rest from the gold buckets (the replay)."""
    from vot.chain import read_problem_chains
    from vot.lm.sequences import chain_example

    by_size: dict[int, list] = {}
    for path in config.chains:
        for problem, chain in read_problem_chains(path):
            by_size.setdefault(int(problem.meta["size"]), []).append(chain_example(problem, chain, tokenizer, patch))
    if not by_size:
        raise ValueError(f"no chains to train on in {config.chains}")
    gold = sum(len(b) for b in data.values())
    chains = sum(len(v) for v in by_size.values())
    for bucket in data.values():
        bucket.weight = (1 - config.chain_share) / gold if gold else 0.0
    for size, examples in sorted(by_size.items()):
        data[f"chains-{size}"] = _bucket(examples, tokenizer)
        data[f"chains-{size}"].weight = config.chain_share / chains
    log({"event": "chains", "files": len(config.chains), "examples": {s: len(v) for s, v in sorted(by_size.items())}})


def shift_indices(ids: np.ndarray, segments: np.ndarray, rng: np.random.Generator, share: float,
                  index_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Renumber a ``share`` of rows' index tokens ``<k>`` as ``<k+o>`` (segments ``k`` as ``k+o``), with
    ``o`` uniform over the offsets that keep every index within ``<MAX_INDEX>``. ids, segments (B, L).

    An example of n actions only ever shows ``<1>`` ... ``<n+1>``, so the embeddings of the high
    indices that long chains need are trained rarely (maze sizes 3-6: the 90th-percentile chain is 20
    actions, the longest 29) or never (out-of-distribution 7-8 reach 47); the policy then copies the
    wrong stated action into late thoughts. Matching ``<k+o>`` to ``<k+o>`` is the same task, and the
    runtime still numbers from ``<1>``."""
    ids, segments = ids.copy(), segments.copy()
    lookup = np.zeros(max(int(ids.max()), max(index_ids)) + 1, dtype=np.int64)  # token id -> k (0: not an index)
    lookup[index_ids] = np.arange(1, len(index_ids) + 1)
    index_ids = np.asarray(index_ids)  # k -> token id of <k+1>
    for row in range(len(ids)):
        room = len(index_ids) - int(segments[row].max())
        if room <= 0 or rng.random() >= share:
            continue
        offset = int(rng.integers(1, room + 1))
        k = np.where(ids[row] >= 0, lookup[np.maximum(ids[row], 0)], 0)  # (L,) image slots are negative
        ids[row] = np.where(k > 0, index_ids[k + offset - 1], ids[row])
        segments[row] = np.where(segments[row] > 0, segments[row] + offset, 0)
    return ids, segments


POSITION_GAP_SHARE = 0.5  # rows with gaps; the rest keep the runtime's contiguous positions


def gap_positions(ids: np.ndarray, rng: np.random.Generator, gap: int, index_ids: list[int]) -> np.ndarray:
    """Position ids (B, L) for ids (B, L): contiguous, except that a `POSITION_GAP_SHARE` of rows skip
    a uniform 0..``gap`` positions before every index token ``<k>`` (each stated action and each step).

    The runtime feeds contiguous positions, so a chain longer than any training chain puts the k-th
    thought further from the k-th stated action (and from the sketches it reads) than training ever
    did: maze-mcq-v1, trained on sizes 3-6, stopped every 10x10 chain after 26 steps and every 12x12
    chain after 22, whatever the stated length (BENCHMARKS.md, session 19). Rotary attention depends
    on distance only, so gaps between steps show a short chain at the distances of a long one, while
    each thought and each sketch keeps its own contiguous positions (a sketch's row stride)."""
    width = ids.shape[1]
    positions = np.broadcast_to(np.arange(width), ids.shape).copy()
    is_index = np.isin(ids, index_ids)  # (B, L)
    for row in range(len(ids)):
        if rng.random() >= POSITION_GAP_SHARE:
            continue
        skips = np.where(is_index[row], rng.integers(0, gap + 1, size=width), 0)  # (L,)
        positions[row] += np.cumsum(skips)
    return positions


def _batch(data: dict[str, Bucket], rng: np.random.Generator, batch_size: int, answer_weight: float = 1.0,
           index_shift: tuple[float, list[int]] | None = None, position_gap: int = 0):
    keys = sorted(data)
    weights = np.array([len(data[k]) * data[k].weight for k in keys], dtype=float)
    bucket = data[keys[int(rng.choice(len(keys), p=weights / weights.sum()))]]
    index = rng.integers(0, len(bucket), size=batch_size)
    width = int(bucket.lengths[index].max())
    ids, segments = bucket.ids[index, :width], bucket.segments[index, :width]  # (B, L)
    if index_shift is not None and index_shift[0] > 0:
        ids, segments = shift_indices(ids, segments, rng, *index_shift)
    positions = torch.from_numpy(gap_positions(ids, rng, position_gap, index_shift[1])) \
        if position_gap > 0 and index_shift is not None else None  # (B, L) or None: contiguous
    ids, segments = torch.from_numpy(ids), torch.from_numpy(segments)
    labels = torch.from_numpy(bucket.labels[index, :width])
    mask = (torch.arange(width)[None] < torch.from_numpy(bucket.lengths[index])[:, None]).long()
    images = np.concatenate([bucket.images[i] for i in index])  # (N, H, W, 3)
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # (N, 3, H, W)
    if bucket.canvas:  # mid grey (0) below and to the right, as the encoder pads: (N, 3, canvas, canvas)
        pixels = torch.nn.functional.pad(pixels, (0, bucket.canvas - pixels.shape[-1], 0, bucket.canvas - pixels.shape[-2]))
    weights = torch.from_numpy(np.where(bucket.answer[index, :width], answer_weight, 1.0).astype(np.float32))
    exact = torch.from_numpy(np.concatenate([bucket.exact[i] for i in index])) if bucket.exact is not None \
        else torch.ones(len(pixels), dtype=torch.bool)  # (N,)
    return ids, segments, mask, labels, pixels, weights, exact, positions


def evaluate_policy(model: PolicyModel, problems, *, sketcher=None, batch: int = 64) -> dict:
    """Greedy accuracy of ``model`` on ``problems`` through the real loop (oracle sketches in vot
    mode unless a sketcher is given; text-only chains otherwise). On a planning task the same
    chains are also scored by the plan their thoughts walked (``walked_accuracy``; `vot.reasoner.Reasoner`
    ``answer="walked"``); ``accuracy`` always scores the written answers."""
    from imagegen import BlankSketcher, OracleSketcher
    from vot.lm.policy import SmallPolicy
    from vot.reasoner import Reasoner

    task = tasks.get(model.spec.task)
    traces = [task.trace(p, "text" if model.spec.mode == "cot" else "visual") for p in problems]
    longest = max(len(model.tokenizer.encode(s.thought)) for t in traces for s in t)
    policy = SmallPolicy(model, device=str(model.device), max_thought_tokens=longest + 2)
    if sketcher is None:
        sketcher = OracleSketcher(task) if model.spec.mode == "vot" else BlankSketcher()
    reasoner = Reasoner(policy, sketcher, max_steps=max(len(t) for t in traces) + 2,
                        answer="walked" if task.kind == "nav" else "written")
    correct = walked = 0
    was_training = model.training
    model.eval()
    for start in range(0, len(problems), batch):
        chunk = problems[start:start + batch]
        for problem, chains in zip(chunk, reasoner.run(chunk, 1, greedy=True)):
            chain = chains[0]
            written = chain.meta.get("written_answer", chain.answer)
            correct += bool(written is not None and task.check(problem, written).correct)
            walked += bool(chain.answered_walked and task.check(problem, chain.answer).correct)
    model.train(was_training)
    result = {"accuracy": correct / max(len(problems), 1), "problems": len(problems)}
    return result | ({"walked_accuracy": walked / max(len(problems), 1)} if task.kind == "nav" else {})


def train_policy(config: PolicyTrainConfig, progress: bool | None = None) -> Path:
    """Train (or resume) and save the policy to ``config.out``; returns that path."""
    task = tasks.get(config.task)
    config.task = task.id
    if config.chains:
        if not 0 < config.chain_share <= 1:
            raise ValueError(f"chain_share must be in (0, 1], got {config.chain_share}")
        missing = [path for path in config.chains if not Path(path).is_file()]
        if missing:
            raise FileNotFoundError(f"no chain file {missing[0]}")
    preset = get_policy_preset(config.preset)
    steps = config.steps or preset.steps
    per_size = config.problems_per_size or preset.problems_per_size
    train_problems = training_problems(config, per_size)  # a bad size fails here, before anything is written
    run = TrainingRun(config.out, steps=steps, description=f"policy {task.id}/{config.mode}/{config.preset}",
                      resume=config.resume, device=config.device, checkpoint_every=config.checkpoint_every,
                      stop_after=config.stop_after, progress=progress)
    out = run.out
    tokenizer_path = out / "tokenizer.json"
    if tokenizer_path.exists():
        tokenizer = WordTokenizer.load(tokenizer_path)
    else:  # every size the task accepts, so out-of-distribution prompts have no unknown words
        texts = [t for size in task.in_distribution + task.out_of_distribution for t in corpus(generate_split(task, "train", size, 50, config.seed))]
        tokenizer = WordTokenizer.train(texts)
        tokenizer.save(tokenizer_path)
    shape = preset.shape | (config.shape or {})
    batch_size = config.batch_size or preset.batch_size
    spec = PolicySpec(task.id, config.mode, PolicyShape(**shape))
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's global RNG
        torch.manual_seed(config.seed)
        model = PolicyModel(spec, tokenizer)
    if config.init_from and not config.resume:
        run.log({"event": "init_from", "path": config.init_from} | warm_start(model, config.init_from))
    optimizer = torch.optim.AdamW(model.parameters(), lr=preset.learning_rate, weight_decay=0.01)
    schedule = run.cosine(optimizer, min(preset.warmup, max(1, steps // 10)), steps)
    model, optimizer, schedule = run.prepare(model, optimizer, schedule)
    start = run.restore()
    parent = Path(config.init_from or "", "train_config.json")  # the warm start's own recipe, for the model card
    (out / "train_config.json").write_text(json.dumps(
        asdict(config) | {"steps": steps, "problems_per_size": per_size, "shape": shape, "batch_size": batch_size}
        | ({"parent": json.loads(parent.read_text())} if config.init_from and parent.is_file() else {}), indent=2))
    began = time.perf_counter()
    data = build_data(config, tokenizer, spec.shape.patch, train_problems, run.log)
    val = [p for size in task.in_distribution for p in generate_split(task, "val", size, config.eval_count, config.seed)]
    run.log({"event": "data", "examples": {s: len(b) for s, b in data.items()}, "data_seconds": round(time.perf_counter() - began, 1)})
    raw = run.accelerator.unwrap_model(model)
    model.train()
    for step in run.steps(start):
        rng = np.random.default_rng([config.seed, step])
        batch = _batch(data, rng, batch_size, config.answer_weight, (config.index_shift_share, tokenizer.indices),
                       config.position_gap)
        ids, segments, mask, labels, pixels, weights, exact, positions = (
            None if t is None else t.to(run.device) for t in batch)
        with run.accelerator.autocast():
            loss = model(ids, segments, mask, labels, pixels, weights, exact, positions)
        run.optimizer_step(loss, model.parameters(), optimizer, schedule)
        run.record(step, loss, schedule)
        if (step + 1) % config.eval_every == 0 or step == steps - 1:
            result = evaluate_policy(raw, val)
            walked = {"val_walked_accuracy": result["walked_accuracy"]} if "walked_accuracy" in result else {}
            run.log({"step": step + 1, "val_accuracy": result["accuracy"], "val_problems": result["problems"]} | walked)
            run.say(f"step {step + 1}: greedy val accuracy {result['accuracy']:.3f} on {result['problems']}"
                    + (f" (walked plans: {result['walked_accuracy']:.3f})" if walked else ""))
            if config.stop_at_accuracy is not None and result["accuracy"] >= config.stop_at_accuracy:
                run.log({"event": "early_stop", "step": step + 1, "val_accuracy": result["accuracy"]})
                steps = step + 1
                break
    if run.stopped:
        return out
    raw.eval().to("cpu").save_pretrained(out, fp16=True)
    planned = config.steps or preset.steps
    run.finish({"steps": steps}
               | ({"planned_steps": planned, "early_stop": config.stop_at_accuracy} if steps < planned else {})
               | {"parameters": _parameters(raw)})
    return out


def _parameters(model: PolicyModel) -> dict:
    return {"decoder": sum(p.numel() for p in model.decoder.parameters()),
            "encoder": sum(p.numel() for p in model.encoder.parameters())}


def warm_start(model: PolicyModel, source: str | Path) -> dict:
    """Copy a trained policy's weights into ``model`` (e.g. another task's policy of the same shape):
    every tensor of the same name and shape, and the token-embedding rows of every token both
    vocabularies share (matched by text, so tokenizers trained on different tasks line up).
    Returns counts of what was copied and the names of tensors that did not fit."""
    trained = PolicyModel.from_pretrained(source)
    target = model.state_dict()
    embed = "decoder.model.embed_tokens.weight"
    copied, skipped = 0, []
    with torch.no_grad():
        for name, tensor in trained.state_dict().items():
            if name == embed or name == "decoder.lm_head.weight":
                continue
            if name in target and target[name].shape == tensor.shape:
                target[name].copy_(tensor)
                copied += 1
            else:
                skipped.append(name)
        old_vocab = trained.tokenizer.tokenizer.get_vocab()
        rows = [(new_id, old_vocab[token]) for token, new_id in model.tokenizer.tokenizer.get_vocab().items()
                if token in old_vocab]
        if rows:
            new_ids, old_ids = (torch.tensor(ids) for ids in zip(*rows))
            target[embed][new_ids] = trained.state_dict()[embed][old_ids]
    return {"tensors": copied, "embedding_rows": len(rows), "vocabulary": len(model.tokenizer), "skipped": skipped}


def export_checkpoint(out: str | Path) -> Path:
    """Save the latest checkpoint of an unfinished run in ``out`` as a loadable policy (fp16), so a
    run cut short by a time limit still yields a model; ``train_summary.json`` says at which step."""
    from safetensors.torch import load_file

    out = Path(out)
    latest = latest_checkpoint(out / "checkpoints")
    if latest is None:
        raise FileNotFoundError(f"{out} has no checkpoints to export")
    config = json.loads((out / "train_config.json").read_text())
    spec = PolicySpec(config["task"], config["mode"], PolicyShape(**config["shape"]))
    model = PolicyModel(spec, WordTokenizer.load(out / "tokenizer.json"))
    missing, unexpected = model.load_state_dict(load_file(str(latest / "model.safetensors")), strict=False)
    if [k for k in missing if k != "decoder.lm_head.weight"] or unexpected:
        raise ValueError(f"{latest}: weights do not match the run's config")
    model.eval().save_pretrained(out, fp16=True)
    step = step_of(latest)
    log = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
    seconds = max((r.get("seconds", 0) for r in log if r.get("step", -1) <= step), default=0)
    (out / "train_summary.json").write_text(json.dumps(
        {"steps": step, "planned_steps": config["steps"], "exported_from": latest.name, "wall_seconds": seconds,
         "device": "cpu" if not torch.cuda.is_available() else "cuda", "parameters": _parameters(model)}, indent=2))
    return out
