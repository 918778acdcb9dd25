"""Bundles: a policy, its vision encoder and a sketcher described by one ``bundle.json``.

``vot.load("maze")`` returns a ready `Reasoner` from the shipped bundle; ``vot.load(PATH)`` from a
bundle directory. A bundle directory holds ``bundle.json`` and the policy (``policy/``, a saved
`vot.lm.model.PolicyModel`; its `PatchEncoder` is the vision encoder). The sketcher is named:
``default`` (the shipped sketcher of the task's environment), ``oracle``/``blank`` (reference), or a
SketchPipeline directory relative to the bundle.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import tasks

SHIPPED = Path(__file__).parent / "pretrained"
FORMAT = "vot.bundle/1"


@dataclass
class BundleSpec:
    """The contents of ``bundle.json``."""

    task: str
    policy: str = "policy"  # directory, relative to the bundle
    sketcher: str = "default"
    sketch_steps: int | None = None  # None: the sketcher's own default
    max_steps: int = 64
    sampling: dict = field(default_factory=lambda: {"temperature": 1.0, "top_p": 1.0})
    format: str = FORMAT

    def save(self, directory: str | Path) -> None:
        Path(directory, "bundle.json").write_text(json.dumps(asdict(self), indent=2) + "\n")


def shipped() -> dict[str, Path]:
    """Names of the shipped bundles -> their directories (``maze-mcq`` also answers to ``maze``)."""
    if not SHIPPED.is_dir():
        return {}
    return {p.name: p for p in sorted(SHIPPED.iterdir()) if (p / "bundle.json").is_file()}


def resolve(name_or_path: str | Path) -> Path:
    """A shipped bundle's name (``maze``, ``maze-mcq``, ``maze-mcq-v0``) or a directory -> its path."""
    path = Path(name_or_path)
    if (path / "bundle.json").is_file():
        return path
    available = shipped()
    name = str(name_or_path)
    for candidate in (name, f"{name}-mcq", name.removesuffix("-v0")):
        if candidate in available:
            return available[candidate]
    if path.exists():
        raise FileNotFoundError(f"{path} has no bundle.json")
    raise ValueError(f"no bundle {name!r}: not a directory with bundle.json, and the shipped bundles are "
                     f"{', '.join(available) or 'none'}")


def read_spec(directory: Path) -> BundleSpec:
    record = json.loads((directory / "bundle.json").read_text())
    if record.get("format") != FORMAT:
        raise ValueError(f"{directory}/bundle.json has format {record.get('format')!r}, expected {FORMAT!r}")
    return BundleSpec(**record)


def load(name_or_path: str | Path, *, sketcher: str | None = None, device: str = "cpu", seed: int = 0,
         temperature: float | None = None, top_p: float | None = None, max_steps: int | None = None,
         sketch_steps: int | None = None):
    """A ready `vot.reasoner.Reasoner` from a bundle.

    Args:
        name_or_path: ``maze``/``frozenlake``/``minibehavior`` (shipped, MCQ), a shipped bundle's
            full name, or a bundle directory.
        sketcher: override the bundle's sketcher (``oracle`` for perfect imagination, ``blank``, a
            path); text-only policies (cot, direct) always get ``blank``.
        device: ``cpu`` or ``cuda`` (bf16 models on cuda).
        seed: keys every chain's token sampling and sketch noise (`vot.keys`).
        temperature, top_p, max_steps, sketch_steps: override the bundle's values.
    """
    from vot.components import build_sketcher
    from vot.lm.policy import SmallPolicy
    from vot.reasoner import Reasoner

    directory = resolve(name_or_path)
    spec = read_spec(directory)
    sampling = dict(spec.sampling)
    if temperature is not None:
        sampling["temperature"] = temperature
    if top_p is not None:
        sampling["top_p"] = top_p
    policy = SmallPolicy(directory / spec.policy, device=device, seed=seed, **sampling)
    task = tasks.get(spec.task)
    name = sketcher or spec.sketcher
    if policy.model.spec.mode != "vot":
        name = "blank"
    elif name not in ("default", "oracle", "blank") and not Path(name).is_absolute():
        name = str(directory / name) if (directory / name).exists() else name
    the_sketcher, backend = build_sketcher(task, name, device)
    reasoner = Reasoner(policy, the_sketcher, policy.encoder if the_sketcher.produces_images else None,
                        max_steps=max_steps or spec.max_steps,
                        sketch_steps=sketch_steps if sketch_steps is not None else spec.sketch_steps,
                        seed=seed)
    reasoner.attention_backend = backend
    reasoner.bundle = str(directory)
    return reasoner


def make_bundle(policy_dir: str | Path, out: str | Path, *, sketcher: str = "default",
                sketch_steps: int | None = None) -> Path:
    """Write a bundle directory around a trained policy (copies the policy into ``out/policy``)."""
    import shutil

    from vot.lm.model import PolicyModel

    model = PolicyModel.from_pretrained(policy_dir)
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; choose a new directory")
    shutil.copytree(policy_dir, out / "policy", ignore=shutil.ignore_patterns("checkpoints"))
    BundleSpec(model.spec.task, sketcher=sketcher if model.spec.mode == "vot" else "blank",
               sketch_steps=sketch_steps).save(out)
    return out
