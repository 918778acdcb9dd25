"""The one assembly path: a `Reasoner` from a bundle or from component names.

`vot.load` (a bundle by name or directory), ``vot bench`` and ``build_reasoner`` (component
names) all come here, so a bundle's sketcher path, sampling and ``max_steps`` mean the same
everywhere. Reference components say so in every output.

Policies: ``default`` (the task's shipped bundle), a directory (a bundle with ``bundle.json`` or
a saved policy with ``policy.json``), ``hf:PATH`` (a local Hugging Face image-text-to-text
checkpoint through `vot.hf_policy.HFPolicy`) or ``simulated`` (reference). Sketchers:
``default`` (the bundle's, else the task environment's shipped diffusion sketcher), a diffusers
pipeline directory, or ``oracle``/``blank`` (reference). Each policy reads sketches with its own
encoder (`vot.policy.Policy`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tasks

POLICIES = ("default", "simulated")  # or a bundle / policy directory, or hf:PATH
SKETCHERS = ("default", "oracle", "blank")  # or a diffusers pipeline directory
REFERENCE = {"simulated", "oracle", "blank"}
DEFAULT_MAX_STEPS = 64


def _is_policy_dir(name: str) -> bool:
    return Path(name, "bundle.json").is_file() or Path(name, "policy.json").is_file()


def check_names(policy: str, sketcher: str) -> None:
    """A one-line ValueError for a policy or sketcher name that names nothing."""
    if not (policy in POLICIES or policy.startswith("hf:") or _is_policy_dir(policy)):
        raise ValueError(f"unknown policy {policy!r}; available: {', '.join(POLICIES)}, a bundle/policy directory or hf:PATH")
    if not (sketcher in SKETCHERS or Path(sketcher, "model_index.json").is_file()):
        raise ValueError(f"unknown sketcher {sketcher!r}; available: {', '.join(SKETCHERS)} or a diffusers pipeline directory")


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; ``cpu``, ``cuda`` and ``cuda:N`` are checked."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}") from None
    if kind.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    if kind.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} was asked for but no CUDA device is available")
        if kind.index is not None and kind.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    return device


@dataclass
class PolicyChoice:
    """What a policy name resolves to: the bundle it came from (if any) and that bundle's settings."""

    task: str | None  # None: any task (the simulated policy, an hf: checkpoint)
    bundle: Path | None = None
    policy_dir: Path | None = None
    sketcher: str = "default"  # the bundle's sketcher, resolved against the bundle directory
    sketch_steps: int | None = None
    max_steps: int = DEFAULT_MAX_STEPS
    sampling: dict | None = None
    answer: str = "written"


def reasoning_settings(policy: str, task: str | None = None) -> dict:
    """The reasoning settings a bundle fixes (``max_steps``, ``sketch_steps``, ``answer``,
    ``temperature``, ``top_p``) as `build_reasoner` keywords, so that a loop which rebuilds the
    reasoner on a bare policy directory (`vot improve` rounds, `vot distill`'s student) reasons as
    its starting bundle does; a bare policy directory gives the defaults."""
    choice = resolve_policy(policy, task)
    sampling = dict(choice.sampling or {})
    return {"max_steps": choice.max_steps, "sketch_steps": choice.sketch_steps, "answer": choice.answer,
            "temperature": sampling.get("temperature"), "top_p": sampling.get("top_p")}


def resolve_policy(policy: str, task: str | None = None) -> PolicyChoice:
    """The bundle or policy directory ``policy`` names (``default``: the task's shipped bundle)."""
    from vot.bundle import read_spec, resolve

    if policy == "simulated" or policy.startswith("hf:"):
        return PolicyChoice(None)
    if policy != "default" and Path(policy, "policy.json").is_file() and not Path(policy, "bundle.json").is_file():
        return PolicyChoice(_policy_task(Path(policy)), policy_dir=Path(policy))
    if policy == "default" and task is None:
        raise ValueError("policy 'default' needs a task (the shipped bundle of which task?)")
    directory = resolve(tasks.get(task).id if policy == "default" else policy)
    spec = read_spec(directory)
    sketcher = spec.sketcher
    if sketcher not in SKETCHERS and not Path(sketcher).is_absolute() and (directory / sketcher).exists():
        sketcher = str(directory / sketcher)
    return PolicyChoice(spec.task, directory, directory / spec.policy, sketcher, spec.sketch_steps, spec.max_steps,
                        dict(spec.sampling), spec.answer)


def _policy_task(directory: Path) -> str:
    import json

    return json.loads((directory / "policy.json").read_text())["task"]


def build_sketcher(task, name: str, device: str = "cpu"):
    """``oracle`` / ``blank`` (reference), ``default`` (the task environment's shipped diffusion
    sketcher) or a diffusers pipeline directory (`imagegen.load_sketcher`)."""
    from imagegen import BlankSketcher, OracleSketcher, load_sketcher

    if name == "oracle":
        return OracleSketcher(task)
    if name == "blank":
        return BlankSketcher()
    return load_sketcher(task.id if name == "default" else name, device=device)


def build_reasoner(task: str | None = None, *, policy: str = "default", sketcher: str = "default",
                   error_rate: float = 0.3, seed: int = 0, max_steps: int | None = None,
                   sketch_steps: int | None = None, temperature: float | None = None, top_p: float | None = None,
                   device: str = "cpu", answer: str | None = None):
    """A ready `vot.reasoner.Reasoner`.

    Args:
        task: the task id; may be omitted when ``policy`` is a bundle or policy directory (its
            own task), and must match it when given.
        policy: see the module docstring.
        sketcher: ``default`` takes the bundle's sketcher (a path in ``bundle.json`` is relative
            to the bundle), else the shipped diffusion sketcher of the task. A text-only policy
            (cot, direct) reasons without sketches and refuses an image-drawing sketcher.
        error_rate: the simulated policy's chain error rate.
        seed: keys every chain's token sampling and sketch noise (`vot.keys`).
        max_steps, sketch_steps, temperature, top_p: ``None`` takes the bundle's value (``max_steps``
            64 and the sketcher's own denoising steps without a bundle).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (bf16 models on CUDA).
        answer: ``written`` or ``walked`` (`vot.reasoner.Reasoner`); ``None`` takes the bundle's
            (``written`` without a bundle).
    """
    from vot.policy import SimulatedPolicy
    from vot.reasoner import Reasoner

    check_names(policy, sketcher)
    device = resolve_device(device)
    choice = resolve_policy(policy, task)
    if task is None and choice.task is None:
        raise ValueError(f"policy {policy!r} works on any task; name the task")
    the_task = tasks.get(task if task is not None else choice.task)
    check_task(choice, policy, the_task.id)
    if policy == "simulated":
        the_policy = SimulatedPolicy(error_rate=error_rate, seed=seed)
    elif policy.startswith("hf:"):
        from vot.hf_policy import HFPolicy

        the_policy = HFPolicy(policy[3:], seed=seed, device=device, **_sampling(None, temperature, top_p))
    else:
        from vot.lm.policy import SmallPolicy

        the_policy = SmallPolicy(choice.policy_dir, device=device, seed=seed,
                                 **_sampling(choice.sampling, temperature, top_p))
        mode = the_policy.model.spec.mode
        if mode != "vot":
            if sketcher not in ("default", "blank"):
                raise ValueError(f"policy {policy} reasons in text ({mode}); it takes the blank sketcher, not {sketcher!r}")
            sketcher = "blank"
    sketcher = sketcher_of(choice, sketcher)
    imagined = tasks.get(imagined_task(choice, the_task.id))
    return Reasoner(the_policy, build_sketcher(imagined, sketcher, device),
                    max_steps=max_steps if max_steps is not None else choice.max_steps,
                    sketch_steps=sketch_steps if sketch_steps is not None else choice.sketch_steps, seed=seed,
                    answer=answer if answer is not None else choice.answer, task=imagined.id)


def sketcher_of(choice: PolicyChoice, sketcher: str = "default") -> str:
    """The sketcher a reasoner on ``choice`` draws with: ``sketcher``, where ``default`` means the
    bundle's (a bare policy directory: the task's shipped one, still ``default``)."""
    return choice.sketcher if sketcher == "default" and choice.bundle is not None else sketcher


def imagined_task(choice: PolicyChoice, task_id: str) -> str:
    """The task whose chains the policy writes: its own (a maze-nav-v1 policy fills dead ends on
    v0's problems too), else ``task_id``."""
    return choice.task if choice.task is not None else task_id


def check_task(choice: PolicyChoice, policy: str, task_id: str) -> None:
    """A policy answers its own task's problems, or another version's (a v0 policy on v1 problems)."""
    if choice.task is not None and tasks.registry.family(choice.task) != tasks.registry.family(task_id):
        raise ValueError(f"policy {policy} is for {choice.task}, not {task_id}")


def _sampling(bundle: dict | None, temperature: float | None, top_p: float | None) -> dict:
    values = dict(bundle or {})
    if temperature is not None:
        values["temperature"] = temperature
    if top_p is not None:
        values["top_p"] = top_p
    return values


def load(name_or_path: str | Path, **options):
    """A ready `vot.reasoner.Reasoner` from a bundle: ``maze``/``frozenlake``/``minibehavior``
    (shipped, MCQ), a shipped bundle's full name (``frozenlake-nav``) or a bundle directory.
    ``options`` are `build_reasoner`'s (``sketcher="oracle"`` for perfect imagination, ``device``,
    ``seed``, ``temperature``, ``top_p``, ``max_steps``, ``sketch_steps``, ``answer``)."""
    from vot.bundle import resolve

    return build_reasoner(policy=str(resolve(name_or_path)), **options)
