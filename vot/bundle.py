"""Bundles: a policy, its vision encoder and a sketcher described by one ``bundle.json``.

``vot.load("maze")`` returns a ready `Reasoner` from the shipped bundle; ``vot.load(PATH)`` from a
bundle directory. A bundle directory holds ``bundle.json`` and the policy (``policy/``, a saved
`vot.lm.model.PolicyModel`; its `PatchEncoder` is the vision encoder). The sketcher is named:
``default`` (the shipped sketcher of the task's environment), ``oracle``/``blank`` (reference), or a
diffusers pipeline directory relative to the bundle. `vot.components` assembles the reasoner.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import tasks

ANSWER_SOURCES = ("written", "walked")  # where a chain's answer comes from: `vot.reasoner.Reasoner` ``answer``
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
    answer: str = "written"  # or "walked": a planning chain answers the plan its thoughts walked (`vot.reasoner.Reasoner`)
    sampling: dict = field(default_factory=lambda: {"temperature": 1.0, "top_p": 1.0})
    format: str = FORMAT

    def save(self, directory: str | Path) -> None:
        Path(directory, "bundle.json").write_text(json.dumps(asdict(self), indent=2) + "\n")


def check_answer(answer: str) -> None:
    """``answer`` names where a chain's answer comes from (`ANSWER_SOURCES`)."""
    if answer not in ANSWER_SOURCES:
        raise ValueError(f"answer (--answer) must be one of {', '.join(ANSWER_SOURCES)}, got {answer!r}")


def shipped() -> dict[str, Path]:
    """Names of the shipped bundles -> their directories (`resolve` also takes task names)."""
    if not SHIPPED.is_dir():
        return {}
    return {p.name: p for p in sorted(SHIPPED.iterdir()) if (p / "bundle.json").is_file()}


def resolve(name_or_path: str | Path) -> Path:
    """A bundle directory, or a shipped bundle's name -> its path. A shipped name is a bundle
    directory's name (``maze-mcq-v0``) or any task name (``maze``, ``maze-mcq``, ``maze-mcq-v1``,
    ``frozenlake-nav``): the bundle of that task, else the newest bundle of its family (a policy of
    one version answers another's problems)."""
    path = Path(name_or_path)
    if (path / "bundle.json").is_file():
        return path
    available = shipped()
    name = str(name_or_path)
    if name in available:
        return available[name]
    try:
        task_id = tasks.get(name).id
    except KeyError:
        task_id = None
    if task_id is not None:
        specs = {bundle: read_spec(directory).task for bundle, directory in available.items()}
        exact = sorted((b != task_id, b) for b, t in specs.items() if t == task_id)  # the bundle named for the task first
        exact = [b for _, b in exact]
        kin = sorted((tasks.registry.version(t), b) for b, t in specs.items()
                     if tasks.registry.family(t) == tasks.registry.family(task_id))
        if exact or kin:
            return available[exact[0] if exact else kin[-1][1]]
    if path.exists():
        raise FileNotFoundError(f"{path} has no bundle.json")
    raise ValueError(f"no bundle {name!r}: not a directory with bundle.json, and the shipped bundles are "
                     f"{', '.join(available) or 'none'}")


def read_spec(directory: Path) -> BundleSpec:
    record = json.loads((directory / "bundle.json").read_text())
    if record.get("format") != FORMAT:
        raise ValueError(f"{directory}/bundle.json has format {record.get('format')!r}, expected {FORMAT!r}")
    return BundleSpec(**record)


def load(name_or_path: str | Path, **options):
    """A ready `vot.reasoner.Reasoner` from a bundle (`vot.components.load`, the one assembly path)."""
    from vot.components import load as _load

    return _load(name_or_path, **options)


def make_bundle(policy_dir: str | Path, out: str | Path, *, sketcher: str = "default",
                sketch_steps: int | None = None, max_steps: int | None = None, answer: str = "written",
                sampling: dict | None = None) -> Path:
    """Write a bundle directory around a trained policy (copies the policy into ``out/policy``)."""
    import shutil

    from vot.lm.model import PolicyModel

    if max_steps is not None and max_steps < 1:
        raise ValueError(f"--max-steps must be a positive integer, got {max_steps}")
    check_answer(answer)
    model = PolicyModel.from_pretrained(policy_dir)
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; choose a new directory")
    shutil.copytree(policy_dir, out / "policy", ignore=shutil.ignore_patterns("checkpoints"))
    BundleSpec(model.spec.task, sketcher=sketcher if model.spec.mode == "vot" else "blank",
               sketch_steps=sketch_steps, answer=answer, **({"max_steps": max_steps} if max_steps else {}),
               **({"sampling": dict(sampling)} if sampling else {})).save(out)
    return out
