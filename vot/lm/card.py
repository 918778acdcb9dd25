"""A short model card (README.md) for a bundle: how its policy was trained and what it scores."""
from __future__ import annotations

import json
from pathlib import Path


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _bundle_flags(spec: dict) -> str:
    """The `vot bundle` flags that reproduce ``spec`` (bundle.json) beyond the defaults."""
    flags = "" if spec.get("sketcher", "default") == "default" else f" --sketcher {spec['sketcher']}"
    flags += f" --sketch-steps {spec['sketch_steps']}" if spec.get("sketch_steps") else ""
    flags += f" --max-steps {spec['max_steps']}" if spec.get("max_steps", 64) != 64 else ""
    return flags + (f" --answer {spec['answer']}" if spec.get("answer", "written") != "written" else "")


def write_card(bundle: str | Path, table: dict | None = None) -> Path:
    """Write ``README.md`` in ``bundle`` from its policy's training files and, if given, the output
    of ``benchmarks/policy_table.py`` (``table``: its JSON)."""
    bundle = Path(bundle)
    spec = json.loads((bundle / "bundle.json").read_text())
    policy = bundle / spec["policy"]
    config = json.loads((policy / "train_config.json").read_text()) if (policy / "train_config.json").exists() else {}
    summary = json.loads((policy / "train_summary.json").read_text()) if (policy / "train_summary.json").exists() else {}
    log = _records(policy / "training_log.jsonl")
    losses = [r for r in log if "loss" in r]
    evals = [r for r in log if "val_problems" in r]
    size_mb = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file()) / 1e6
    lines = [
        f"# {bundle.name}: {spec['task']} ({json.loads((policy / 'policy.json').read_text())['mode']} mode)", "",
        f"A `SmallPolicy` (Llama-style decoder + ViT `PatchEncoder`, trained by this project on generated "
        f"train-split problems) with the `{spec['sketcher']}` sketcher. {size_mb:.1f} MB on disk (policy weights fp16).", "",
        "```python", "import vot", f"reasoner = vot.load({bundle.name!r})", "```", "",
        "## Training", "",
        f"- command: {_how(config)} then `vot bundle {config.get('out', 'OUT')} --out {bundle}{_bundle_flags(spec)}`",
        *[f"  - its `--init-from` {ancestor.get('out')} was trained with {_how(ancestor)}"
          for ancestor in _ancestors(config)],
        f"- shape: {config.get('shape')}; batch {config.get('batch_size')}; {config.get('steps')} steps; "
        f"{config.get('problems_per_size')} train problems per size; sketcher share {config.get('sketcher_share')}",
        f"- parameters: {summary.get('parameters')}; wall time {summary.get('wall_seconds', 0) / 60:.1f} min on "
        f"{summary.get('device')}",
    ]
    if "early_stop" in summary:
        lines.append(f"- **stopped early** at step {summary['steps']} of {summary['planned_steps']}: greedy validation "
                     f"accuracy reached `--stop-at-accuracy {summary['early_stop']}`")
    elif "planned_steps" in summary:
        lines.append(f"- **cut short**: saved from {summary['exported_from']} (step {summary['steps']} of "
                     f"{summary['planned_steps']}) with `vot train policy --export`")
    if losses:
        lines.append(f"- loss (mean over written tokens): {losses[0]['loss']:.3f} at step {losses[0]['step']} -> "
                     f"{losses[-1]['loss']:.3f} at step {losses[-1]['step']}")
    if evals:
        curve = ", ".join(f"{r['step']}: {100 * r['val_accuracy']:.1f}%" for r in evals)
        lines.append(f"- greedy validation accuracy ({evals[-1]['val_problems']} val problems, oracle sketches): {curve}")
        if all("val_walked_accuracy" in r for r in evals):
            walked = ", ".join(f"{r['step']}: {100 * r['val_walked_accuracy']:.1f}%" for r in evals)
            lines.append(f"- the same chains scored by the plans they walked: {walked}")
    if table:
        lines += ["", "## Test accuracy", "", f"`python benchmarks/policy_table.py` ({table['args']})", "",
                  table["table"]]
    lines += ["", "Training log: `policy/training_log.jsonl`. Numbers come from the files beside this card.", ""]
    (bundle / "README.md").write_text("\n".join(lines))
    return bundle / "README.md"


def _how(config: dict) -> str:
    """How a run was made, in markdown: its ``vot train policy`` command, or for a policy trained on
    kept chains (``chains``: a round of ``vot improve`` or ``vot distill``) the command of that run
    when its ``config.json`` is found beside the chains, and which chains it read."""
    chains = config.get("chains")
    if not chains:
        return f"`{_command(config)}`"
    run = Path(chains[-1]).parent.parent  # <run>/round-<k>/kept.jsonl
    made = json.loads((run / "config.json").read_text()).get("command") if (run / "config.json").is_file() else None
    step = f"`{made}`" if made else f"a `vot improve` / `vot distill` run in {run}"
    return (f"{Path(chains[-1]).parent.name} of {step}: training continued "
            f"({config.get('steps')} steps, {config.get('chain_share', 0):.0%} of the batches from the kept chains "
            f"{', '.join(f'`{c}`' for c in chains)}, the rest gold traces of the training sizes)")


def _command(config: dict) -> str:
    return (f"vot train policy --task {config.get('task')} --mode {config.get('mode')} --preset {config.get('preset')}"
            f" --steps {config.get('steps')}{_extra_flags(config)} --out {config.get('out')}")


def _ancestors(config: dict) -> list[dict]:
    """The training configs of the runs a warm-started run descends from (``parent``, recorded by training)."""
    chain = []
    while config.get("parent"):
        config = config["parent"]
        chain.append(config)
    return chain


def _extra_flags(config: dict) -> str:
    """The non-default training flags of a run, as they are written on the command line."""
    from dataclasses import fields

    from vot.lm.train import PolicyTrainConfig

    flags = ("eval_every", "eval_count", "stop_at_accuracy", "answer_weight", "sketcher_share", "canvas_share",
             "index_shift_share", "position_gap", "problems_per_size", "seed", "init_from", "sizes")
    defaults = {f.name: f.default for f in fields(PolicyTrainConfig) if f.name in flags}
    used = {key: config.get(key, BEFORE_THE_FLAG.get(key, default)) for key, default in defaults.items()}
    shape = config.get("shape") or {}  # the shape options that are flags (`vot train policy --patch/--edge-perception/--context-perception`)
    written = {key: ",".join(map(str, value)) if isinstance(value, (list, tuple)) else value for key, value in used.items()}
    return ("".join(f" --{key.replace('_', '-')} {written[key]}" for key, default in defaults.items() if used[key] != default)
            + (" --edge-perception" if shape.get("perception_edges") else "")
            + (" --context-perception" if shape.get("perception_context") else "")
            + (f" --patch {shape['patch']}" if shape.get("patch", 16) != 16 else ""))


# What runs recorded before a flag existed used: a train_config.json without the key ran with this.
BEFORE_THE_FLAG = {"index_shift_share": 0.0}
