"""``learned``: a small process reward model over multimodal chains.

For each step it reads the thought's tokens, the action the prompt states at that position, and
the vision tokens of the sketch before the step and of the step's own sketch (from the bundle's
frozen `PatchEncoder`), and outputs P(step right). For the answer step it reads the answer text,
the options, and the last sketch. It sees only what a chain and its problem's input show, never the
gold answer. Trained by `vot.verifier_train` (``vot train verifier --task TASK``) on the shipped
policy's own sampled chains, labelled automatically: a step is right when the `consistency`
verifier says so (its sketch reads back as the simulator's state after its thought, and the
thought obeys the problem's rules); the answer step is right when the answer is.

A saved model is a directory: ``config.json`` (`VerifierConfig`), ``model.safetensors`` and
``tokenizer.json`` (a copy of the policy's word-level tokenizer). The vision encoder is not copied:
``config.json`` names the bundle whose encoder it reads and a fingerprint of that encoder's
weights, checked at load (a retrained bundle fails loudly instead of scoring garbage).
"""
from __future__ import annotations

import hashlib
import json
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

import tasks
from tasks import Problem
from vision_encoder.patch import images_to_pixels
from vot.chain import Chain
from vot.lm.tokenizer import WordTokenizer
from vot.verifiers import Verifier

FORMAT = "vot.verifier/1"
# token types: 0 summary, 1 stated action, 2 thought, 3 options, 4 vision
SUMMARY, ACTION, THOUGHT, OPTIONS, VISION = range(5)


@dataclass
class VerifierConfig:
    """Shape of a `VerifierModel` and what it reads."""

    task: str  # versioned task id, e.g. maze-mcq-v0
    bundle: str  # the shipped bundle name (or bundle directory) whose encoder gives the vision tokens
    vocab_size: int
    vision_dim: int  # the encoder's output width
    encoder_sha256: str = ""  # fingerprint of the encoder's weights ("" skips the check)
    width: int = 64
    layers: int = 2
    heads: int = 4
    max_text: int = 96  # text tokens kept per example (thought, stated action, options)
    max_steps: int = 64  # step-position embeddings
    format: str = FORMAT


class VerifierModel(nn.Module):
    """Text tokens + vision tokens -> one logit of P(step right).

    Text: token + type + position embeddings. Vision: for each patch, the current sketch's token and
    its difference from the previous sketch's token, projected to ``width``. A learned summary token,
    plus a step-position embedding, is read by a sigmoid head after a small transformer encoder.
    """

    def __init__(self, config: VerifierConfig):
        super().__init__()
        self.config = config
        w = config.width
        self.tokens = nn.Embedding(config.vocab_size, w)
        self.types = nn.Embedding(5, w)
        self.positions = nn.Embedding(config.max_text, w)
        self.steps = nn.Embedding(config.max_steps + 1, w)
        self.vision = nn.Sequential(nn.Linear(2 * config.vision_dim, w), nn.GELU(), nn.Linear(w, w))
        self.summary = nn.Parameter(torch.zeros(w))
        layer = nn.TransformerEncoderLayer(w, config.heads, dim_feedforward=2 * w, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(w)
        self.head = nn.Linear(w, 1)

    def init_weights(self, generator: torch.Generator) -> "VerifierModel":
        """Deterministic init from ``generator`` (no global RNG): N(0, 0.02) matrices, zero biases,
        unit norms."""
        with torch.no_grad():
            for name, param in self.named_parameters():
                if "norm" in name and name.endswith("weight"):
                    param.fill_(1.0)
                elif param.dim() >= 2 or name == "summary":
                    param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
                else:
                    param.zero_()
        return self

    def forward(self, ids: torch.Tensor, types: torch.Tensor, text_mask: torch.Tensor, step: torch.Tensor,
                current: torch.Tensor, previous: torch.Tensor, vision_mask: torch.Tensor) -> torch.Tensor:
        """Logits, (B,).

        Args:
            ids, types, text_mask: (B, L) token ids, token types, True where real.
            step: (B,) the step's position in the chain (0-based, clamped).
            current, previous: (B, T, Dv) vision tokens of the step's sketch and the one before it.
            vision_mask: (B, T) True where a real patch.
        """
        B, L = ids.shape
        pos = torch.arange(L, device=ids.device).clamp(max=self.config.max_text - 1)
        text = self.tokens(ids) + self.types(types) + self.positions(pos)[None]  # (B, L, W)
        vis = self.vision(torch.cat([current, current - previous], dim=-1))  # (B, T, W)
        vis = vis + self.types.weight[VISION]
        head = (self.summary + self.steps(step.clamp(max=self.config.max_steps)))[:, None]  # (B, 1, W)
        x = torch.cat([head, text, vis], dim=1)  # (B, 1 + L + T, W)
        keep = torch.cat([torch.ones(B, 1, dtype=torch.bool, device=ids.device), text_mask, vision_mask], dim=1)
        x = self.encoder(x, src_key_padding_mask=~keep)  # (B, 1 + L + T, W)
        return self.head(self.norm(x[:, 0])).squeeze(-1)  # (B,)


def encoder_fingerprint(encoder: nn.Module) -> str:
    """sha256 over the encoder's tensors (names, shapes, float32 values), in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().to(torch.float32).cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


# --- examples --------------------------------------------------------------------------------------
@dataclass
class Example:
    """One step to score: its text, position, and the vision tokens around it."""

    ids: list[int]
    types: list[int]
    step: int
    current: torch.Tensor  # (T, Dv)
    previous: torch.Tensor  # (T, Dv)


def options_text(problem: Problem) -> str:
    return " ".join(f"{letter} {text}." for letter, text in sorted((problem.options or {}).items()))


def step_examples(problem: Problem, chain: Chain, tokenizer: WordTokenizer, vision,
                  max_text: int = 96) -> list[Example]:
    """One `Example` per step of ``chain``. ``vision(image) -> (T, Dv)``. A step's previous sketch is
    the last sketch before it (the problem's image for the first); a step without a sketch (the
    answer, or a text-only chain) reads the previous sketch as its current one too."""
    actions = list(problem.actions or [])
    previous = vision(problem.image)
    out, position = [], 0
    for index, step in enumerate(chain.steps):
        if step.is_answer:
            head = tokenizer.encode(options_text(problem))
            head_type = OPTIONS
        else:
            stated = actions[position] if position < len(actions) else None
            head = tokenizer.encode(stated) if stated else [tokenizer.unk]
            head_type = ACTION
            position += 1
        thought = tokenizer.encode(step.thought) or [tokenizer.unk]
        ids = (head + [tokenizer.eot] + thought)[:max_text]
        types = ([head_type] * len(head) + [SUMMARY] + [THOUGHT] * len(thought))[:max_text]
        current = vision(step.sketch) if step.sketch is not None else previous
        out.append(Example(ids, types, index, current, previous))
        previous = current
    return out


def collate(examples: Sequence[Example], device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Pad a list of examples into the keyword arguments of `VerifierModel.forward`."""
    B = len(examples)
    L = max(len(e.ids) for e in examples)
    T = max(e.current.shape[0] for e in examples)
    Dv = examples[0].current.shape[1]
    ids = torch.zeros(B, L, dtype=torch.long)
    types = torch.zeros(B, L, dtype=torch.long)
    text_mask = torch.zeros(B, L, dtype=torch.bool)
    current = torch.zeros(B, T, Dv)
    previous = torch.zeros(B, T, Dv)
    vision_mask = torch.zeros(B, T, dtype=torch.bool)
    for i, e in enumerate(examples):
        n, t = len(e.ids), e.current.shape[0]
        ids[i, :n] = torch.tensor(e.ids)
        types[i, :n] = torch.tensor(e.types)
        text_mask[i, :n] = True
        current[i, :t] = e.current
        # a sketch of another size than its predecessor (should not happen) compares against zeros
        if e.previous.shape == e.current.shape:
            previous[i, :t] = e.previous
        vision_mask[i, :t] = True
    step = torch.tensor([e.step for e in examples], dtype=torch.long)
    batch = dict(ids=ids, types=types, text_mask=text_mask, step=step, current=current, previous=previous,
                 vision_mask=vision_mask)
    return {k: v.to(device) for k, v in batch.items()}


class VisionCache:
    """Vision tokens per image, (T, Dv), computed once per image object (weakly keyed by id)."""

    def __init__(self, encoder: nn.Module):
        self.encoder = encoder
        self._seen: dict[int, tuple] = {}

    @torch.no_grad()
    def __call__(self, image) -> torch.Tensor:
        cached = self._seen.get(id(image))
        if cached is not None and cached[0]() is image:
            return cached[1]
        param = next(self.encoder.parameters())
        pixels = images_to_pixels([image]).to(param.device, param.dtype)  # (1, 3, H, W)
        tokens = self.encoder(pixels)[0].float().cpu()  # (T, Dv)
        key = id(image)
        try:
            self._seen[key] = (weakref.ref(image, lambda _, key=key: self._seen.pop(key, None)), tokens)
        except TypeError:  # not weakly referenceable: do not cache
            pass
        return tokens


# --- the verifier ----------------------------------------------------------------------------------
class LearnedVerifier(Verifier):
    """P(step right) from a trained `VerifierModel`.

    Args:
        model_dir: a saved verifier directory. Without it, the shipped verifier of each problem's
            task (or, failing that, of its family: `shipped_dir`) is loaded the first time a problem of that task is scored.
        device: where the model and the encoder run.

    Build one around in-memory parts with `LearnedVerifier.from_parts` (tests, training).
    """

    label = "learned"
    step_level = True
    checks_sketches = True

    def __init__(self, model_dir: str | Path | None = None, *, device: str = "cpu"):
        self.device = device
        self._parts: dict[str, tuple[VerifierModel, WordTokenizer, VisionCache]] = {}
        self._fixed: tuple[VerifierModel, WordTokenizer, VisionCache] | None = None
        if model_dir is not None:
            self._fixed = load_parts(model_dir, device=device)

    @classmethod
    def from_parts(cls, model: VerifierModel, tokenizer: WordTokenizer, encoder: nn.Module) -> "LearnedVerifier":
        verifier = cls()
        verifier._fixed = (model.eval(), tokenizer, VisionCache(encoder.eval()))
        return verifier

    def _for(self, problem: Problem):
        if self._fixed is not None:
            model = self._fixed[0]
            if tasks.registry.family(model.config.task) != tasks.registry.family(problem.task):
                raise ValueError(f"this learned verifier was trained on {model.config.task}, not {problem.task} ({problem.id})")
            return self._fixed
        if problem.task not in self._parts:
            self._parts[problem.task] = load_parts(shipped_dir(problem.task), device=self.device)
        return self._parts[problem.task]

    @torch.no_grad()
    def step_scores(self, problem: Problem, chain: Chain) -> list[float]:
        if not chain.steps:
            return []
        model, tokenizer, vision = self._for(problem)
        examples = step_examples(problem, chain, tokenizer, vision, model.config.max_text)
        batch = collate(examples, next(model.parameters()).device)
        return torch.sigmoid(model(**batch).float()).tolist()


def shipped_dir(task_id: str) -> Path:
    """The shipped verifier directory for a task id (``maze-mcq-v0`` -> ``vot/pretrained/maze-mcq-v0/verifier``):
    the verifier of a bundle of that task, else of the newest bundle of its family that has one (a
    verifier reads sketches with its own bundle's encoder, so it scores any policy's chains)."""
    from vot.bundle import read_spec, shipped

    tid = tasks.get(task_id).id
    with_verifier = {name: read_spec(directory).task for name, directory in shipped().items()
                     if (directory / "verifier" / "config.json").is_file()}
    exact = [name for name, task in with_verifier.items() if task == tid]
    kin = sorted((tasks.registry.version(task), name) for name, task in with_verifier.items()
                 if tasks.registry.family(task) == tasks.registry.family(tid))
    if exact or kin:
        return shipped()[exact[0] if exact else kin[-1][1]] / "verifier"
    raise FileNotFoundError(f"no shipped learned verifier for {tid}; train one with `vot train verifier --task {tid}` "
                            f"and pass its directory")


def bundle_encoder(bundle: str | Path, device: str = "cpu") -> nn.Module:
    """The frozen vision encoder of a bundle's policy."""
    from vot.bundle import read_spec, resolve
    from vot.lm.model import PolicyModel

    directory = resolve(bundle)
    model = PolicyModel.from_pretrained(directory / read_spec(directory).policy, device=device)
    return model.encoder.float().eval().requires_grad_(False)


def save_verifier(directory: str | Path, model: VerifierModel, tokenizer: WordTokenizer, *, fp16: bool = True) -> Path:
    """Write ``config.json``, ``model.safetensors`` (fp16 by default) and ``tokenizer.json``."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.half() if fp16 and v.is_floating_point() else v).detach().cpu().contiguous()
               for k, v in model.state_dict().items()}
    save_file(tensors, str(directory / "model.safetensors"))
    (directory / "config.json").write_text(json.dumps(asdict(model.config), indent=2) + "\n")
    tokenizer.save(directory / "tokenizer.json")
    return directory


def load_model(directory: str | Path, device: str = "cpu") -> tuple[VerifierModel, WordTokenizer]:
    """The model (float32, eval mode) and tokenizer of a saved verifier directory."""
    from safetensors.torch import load_file

    directory = Path(directory)
    record = json.loads((directory / "config.json").read_text())
    if record.get("format") != FORMAT:
        raise ValueError(f"{directory}/config.json has format {record.get('format')!r}, expected {FORMAT!r}")
    model = VerifierModel(VerifierConfig(**record))
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(directory / "model.safetensors")).items()}
    model.load_state_dict(state)
    return model.to(device).eval(), WordTokenizer.load(directory / "tokenizer.json")


def load_parts(directory: str | Path, device: str = "cpu", encoder: nn.Module | None = None):
    """(model, tokenizer, vision cache) of a saved verifier; the encoder comes from its bundle
    unless given (the bundle the verifier directory sits in, else the one its config names), and
    must match the fingerprint the verifier was trained with."""
    from vot.bundle import read_spec, resolve

    model, tokenizer = load_model(directory, device)
    source = "the given encoder"
    if encoder is None:
        home = Path(directory).parent
        if (home / "bundle.json").is_file():
            bundle = home
        else:  # the bundle its config names; a name that now means another version falls back to the task's own
            bundle = resolve(model.config.bundle)
            if read_spec(bundle).task != model.config.task:
                bundle = resolve(model.config.task)
        source = f"the encoder of bundle {str(bundle)!r}"
        encoder = bundle_encoder(bundle, device)
    if model.config.encoder_sha256 and encoder_fingerprint(encoder) != model.config.encoder_sha256:
        raise ValueError(f"{directory}: {source} is not the one this verifier was "
                         f"trained with (fingerprint {encoder_fingerprint(encoder)} != {model.config.encoder_sha256}); retrain it")
    return model, tokenizer, VisionCache(encoder)
