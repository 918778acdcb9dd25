"""Train a `SketchPipeline` on an environment's transitions (``vot train sketcher``).

The run (accelerate: bf16 autocast on GPU, fp32 on CPU; linear warmup then cosine decay;
checkpoints every ``checkpoint_every`` steps and ``--resume``; the progress bar and
``training_log.jsonl``) is `imagegen.trainer.TrainingRun`; EMA weights are saved with each checkpoint. The loss is the MSE of the
predicted clean sketch, with pixels that change between the previous and next sketch weighted up
(``change_weight``): a move touches a few cells, and unweighted the model first learns to copy.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from imagegen.trainer import TrainingRun
from imagegen.data import (build_transitions, environment_of, load_transitions, merge_transitions, thought_corpus,
                           training_sizes)
from imagegen.presets import get_preset


@dataclass
class SketcherTrainConfig:
    task: str
    preset: str = "tiny"
    steps: int | None = None  # default: the preset's
    out: str = "checkpoints/sketcher"
    seed: int = 0
    problems_per_size: int = 1000
    change_weight: float = 10.0
    checkpoint_every: int = 250
    resume: bool = False
    device: str = "auto"
    stop_after: int | None = None  # save a checkpoint at this step and return (time-sliced training)
    save_dtype: str = "float16"  # shipped weights; loaders upcast to float32 on CPU
    init_from: str | None = None  # a trained sketcher (directory or shipped name) to fine-tune; see `init_weights`
    condition_noise: float = 0.0  # max strength of the perturbation of the previous sketch; see `perturb_condition`
    transitions: list[str] = field(default_factory=list)  # extra transition files (`imagegen.data.save_transitions`)
    transitions_share: float = 0.5  # share of batches drawn from them when given (the rest: gold transitions)
    learning_rate: float | None = None  # default: the preset's (from scratch); fine-tuning wants far less
    warmup: int | None = None  # warmup steps; default: the preset's


def build_pipeline(environment: str, preset_name: str, seed: int = 0):
    """A randomly initialised SketchPipeline for ``environment`` at ``preset_name``."""
    from diffusers import DDIMScheduler, UNet2DModel

    from imagegen.pipeline import SketchPipeline
    from imagegen.text import build_text_encoder, train_tokenizer

    preset = get_preset(preset_name)
    with torch.random.fork_rng(devices=[]):  # seeded weight init without touching the caller's global RNG
        torch.manual_seed(seed)
        return _assemble(environment, preset, DDIMScheduler, UNet2DModel, SketchPipeline, build_text_encoder, train_tokenizer)


def _assemble(environment, preset, DDIMScheduler, UNet2DModel, SketchPipeline, build_text_encoder, train_tokenizer):
    levels = len(preset.block_out_channels)
    down = ["DownBlock2D"] * levels
    up = ["UpBlock2D"] * levels
    if preset.attention:
        down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    unet = UNet2DModel(
        in_channels=6 * preset.patch**2, out_channels=3 * preset.patch**2, block_out_channels=preset.block_out_channels,
        layers_per_block=preset.layers_per_block, down_block_types=tuple(down), up_block_types=tuple(up),
        add_attention=preset.attention, class_embed_type="identity", norm_num_groups=16,
        attention_head_dim=32,
    )
    tokenizer = train_tokenizer(thought_corpus(environment))
    text_encoder = build_text_encoder(tokenizer, preset.text_hidden, preset.text_layers, preset.text_heads,
                                      preset.embedding_dim)
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="sample",
                              timestep_spacing="trailing", clip_sample=True)
    return SketchPipeline(unet=unet, scheduler=scheduler, text_encoder=text_encoder, tokenizer=tokenizer, default_steps=4)


def init_weights(pipe, trained) -> None:
    """Load the UNet and text encoder of the trained sketcher pipeline ``trained`` into ``pipe``
    (fine-tuning). Both must be the same preset with the same thought vocabulary (in practice: the same
    environment)."""
    source = trained.name_or_path
    if trained.tokenizer.get_vocab() != pipe.tokenizer.get_vocab():
        raise ValueError(f"--init-from {source}: its thought vocabulary differs from this environment's")
    for name in ("unet", "text_encoder"):
        mine, theirs = getattr(pipe, name).state_dict(), getattr(trained, name).state_dict()
        wrong = sorted(k for k in mine if k not in theirs or theirs[k].shape != mine[k].shape)
        if wrong or set(theirs) - set(mine):
            raise ValueError(f"--init-from {source}: its {name} is not this preset's (first mismatch: "
                             f"{(wrong or sorted(set(theirs) - set(mine)))[0]})")
        getattr(pipe, name).load_state_dict({k: v.float() for k, v in theirs.items()})


def save_weights(pipe, out: str | Path, dtype: str = "float16") -> None:
    """Save the pipeline's weights as safetensors in ``dtype`` (``float16`` halves the size; the
    fidelity tables in the model cards are measured on these stored weights)."""
    pipe.to("cpu").to(getattr(torch, dtype))
    pipe.save_pretrained(out, safe_serialization=True)
    pipe.to(torch.float32)


def _batch(data, rng: np.random.Generator, batch_size: int):
    sizes = sorted(data)
    weights = np.array([len(data[s]) for s in sizes], dtype=float)
    size = sizes[int(rng.choice(len(sizes), p=weights / weights.sum()))]
    chunk = data[size]
    index = rng.integers(0, len(chunk), size=batch_size)
    prev = torch.from_numpy(chunk.prev[index]).permute(0, 3, 1, 2).float() / 127.5 - 1  # (B, 3, H, W)
    nxt = torch.from_numpy(chunk.next[index]).permute(0, 3, 1, 2).float() / 127.5 - 1  # (B, 3, H, W)
    return prev, nxt, [chunk.thoughts[i] for i in index]


def perturb_condition(prev: torch.Tensor, strength: float, generator: torch.Generator, block: int = 4) -> torch.Tensor:
    """The previous sketch as a rollout would give it: slightly off. Training only ever shows the
    sketcher exact previous sketches, but in a rollout each input is its own last output, so small
    colour errors compound over long chains (conditioning augmentation, as in cascaded diffusion).
    Each example gets a strength ``s ~ U(0, strength)`` and ``s * (n_block + n_pixel / 2)``, where
    ``n_block`` is one Gaussian offset per ``block`` x ``block`` pixels and channel (a drifting cell
    colour) and ``n_pixel`` is per-pixel noise. ``prev``: (B, 3, H, W) in [-1, 1]."""
    if strength <= 0:
        return prev
    b, c, h, w = prev.shape
    s = torch.rand(b, 1, 1, 1, generator=generator) * strength  # (B, 1, 1, 1)
    coarse = torch.randn(b, c, -(-h // block), -(-w // block), generator=generator)  # (B, 3, H/block, W/block)
    coarse = coarse.repeat_interleave(block, 2).repeat_interleave(block, 3)[:, :, :h, :w]  # (B, 3, H, W)
    fine = torch.randn(b, c, h, w, generator=generator)  # (B, 3, H, W)
    return (prev + s.to(prev.device) * (coarse + fine / 2).to(prev.device)).clamp(-1, 1)


def train_sketcher(config: SketcherTrainConfig, progress: bool | None = None) -> Path:
    """Train (or resume) and save the pipeline to ``config.out``; returns that path."""
    from diffusers.training_utils import EMAModel

    from imagegen.pipeline import predict_clean
    from imagegen.text import encode_text

    environment = environment_of(config.task)
    preset = get_preset(config.preset)
    if config.condition_noise < 0:
        raise ValueError(f"condition_noise must be >= 0, got {config.condition_noise}")
    if config.transitions and not 0 < config.transitions_share <= 1:
        raise ValueError(f"transitions_share must be in (0, 1], got {config.transitions_share}")
    missing = [path for path in config.transitions if not Path(path).is_file()]
    if missing:
        raise FileNotFoundError(f"no transition file {missing[0]}")
    steps = config.steps or preset.steps
    run = TrainingRun(config.out, steps=steps, description=f"sketcher {environment}/{config.preset}",
                      resume=config.resume, device=config.device, checkpoint_every=config.checkpoint_every,
                      stop_after=config.stop_after, progress=progress)
    out = run.out
    pipe = build_pipeline(environment, config.preset, config.seed)
    parent = {}
    if config.init_from:
        from imagegen import load_sketcher

        trained = load_sketcher(config.init_from)
        if not config.resume:
            init_weights(pipe, trained)
        parent_config = Path(trained.name_or_path, "train_config.json")  # its own recipe, for the model card
        parent = {"parent": json.loads(parent_config.read_text())} if parent_config.is_file() else {}
    unet, text_encoder = pipe.unet, pipe.text_encoder
    parameters = list(unet.parameters()) + list(text_encoder.parameters())
    learning_rate = config.learning_rate if config.learning_rate is not None else preset.learning_rate
    warmup = config.warmup if config.warmup is not None else preset.warmup
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=1e-4)
    ema = EMAModel(parameters, decay=0.999, use_ema_warmup=True)
    unet, text_encoder, optimizer, schedule = run.prepare(unet, text_encoder, optimizer,
                                                          run.cosine(optimizer, warmup, steps), checkpointed=(ema,))
    start = run.restore()
    (out / "train_config.json").write_text(json.dumps(
        asdict(config) | {"environment": environment, "steps": steps} | parent, indent=2))
    data = build_transitions(environment, training_sizes(environment), config.problems_per_size, config.seed)
    extra = merge_transitions(load_transitions(path) for path in config.transitions)
    noise_scheduler = pipe.scheduler
    unet.train()
    text_encoder.train()
    for step in run.steps(start):
        rng = np.random.default_rng([config.seed, step])  # resumable: the batch depends only on the step
        source = extra if extra and rng.random() < config.transitions_share else data  # no draw without extra files
        prev, target, thoughts = _batch(source, rng, preset.batch_size)
        prev, target = prev.to(run.device), target.to(run.device)
        generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
        noise = torch.randn(target.shape, generator=generator).to(run.device)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(target),), generator=generator).to(run.device)
        noisy = noise_scheduler.add_noise(target, noise, t)  # (B, 3, H, W)
        seen = perturb_condition(prev, config.condition_noise, generator)  # (B, 3, H, W)
        with run.accelerator.autocast():
            condition = encode_text(pipe.tokenizer, text_encoder, thoughts, run.device)  # (B, D)
            prediction = predict_clean(unet, noisy, seen, t, condition)  # (B, 3, H, W)
        changed = (target - prev).abs().amax(1, keepdim=True) > 0.1  # (B, 1, H, W)
        weight = 1.0 + config.change_weight * changed.float()
        loss = (weight * (prediction.float() - target) ** 2).mean()
        run.optimizer_step(loss, parameters, optimizer, schedule)
        ema.step(parameters)
        run.record(step, loss, schedule)
    if run.stopped:
        return out
    ema.copy_to(parameters)
    pipe.unet, pipe.text_encoder = run.accelerator.unwrap_model(unet).eval(), run.accelerator.unwrap_model(text_encoder).eval()
    save_weights(pipe, out, config.save_dtype)
    run.finish({"steps": steps, "parameters": {"unet": sum(p.numel() for p in pipe.unet.parameters()),
                                               "text_encoder": sum(p.numel() for p in pipe.text_encoder.parameters())}})
    return out
