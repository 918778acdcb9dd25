"""Model cards for shipped sketchers: how it was trained and how faithful its sketches are."""
from __future__ import annotations

import json
import platform
from dataclasses import asdict
from pathlib import Path

from imagegen.evaluate import FidelityRow, format_fidelity


def write_model_card(path: str | Path, tables: dict[str, list[FidelityRow]], eval_command: str, date: str) -> Path:
    """README.md + fidelity.json beside the weights, from ``train_config.json`` / ``train_summary.json``
    (written by training) and the fidelity rows just measured, one table per task or environment
    name in ``tables`` (an environment name: its navigation plans; an MCQ task: its stated actions)."""
    path = Path(path)
    config = json.loads((path / "train_config.json").read_text())
    summary = json.loads((path / "train_summary.json").read_text())
    (path / "fidelity.json").write_text(json.dumps({name: [asdict(r) for r in rows] for name, rows in tables.items()}, indent=2))
    params = summary["parameters"]
    lineage, child = "", config
    while child.get("parent"):  # the whole chain of warm starts, newest first
        lineage += (f"- Fine-tuned (`--init-from {child['init_from']}`) from a sketcher trained with "
                    f"`{_train_command(child['parent'], child['init_from'])}`\n")
        child = child["parent"]
    sections = "\n".join(f"### {_describe(name)}\n\n{format_fidelity(rows)}\n" for name, rows in tables.items())
    card = f"""# Sketcher: {config['environment']} ({config['preset']})

A `imagegen.SketchPipeline` that imagines the next {config['environment']} state sketch from the previous
sketch and a thought ("Go up.", …). Trained by this project on transitions from the gold traces of the
train split (sizes {', '.join(map(str, _sizes(config['environment'])))}), plus random single actions.

- Training command: `{_train_command(config, path.as_posix())}`
{lineage}- Steps: {summary['steps']} (batch {_batch(config['preset'])}), wall time {summary['wall_seconds'] / 60:.1f} min on {summary['device']}
  ({platform.machine()}, the project's 2-core CPU sandbox)
- Parameters: UNet {params['unet']:,}, text encoder {params['text_encoder']:,}; weights stored in fp16 (safetensors)
- Training log: `training_log.jsonl`; config: `train_config.json`

## Sketch fidelity

Command: `{eval_command}` ({date}). Rollouts over whole gold action sequences of test-split
problems, each sketch conditioned on the previous *generated* sketch; a sketch is correct
when `Task.read` recovers exactly the simulated state.

{sections}"""
    (path / "README.md").write_text(card)
    return path / "README.md"


def _train_command(config: dict, out: str) -> str:
    init = f" --init-from {config['init_from']}" if config.get("init_from") else ""
    noise = f" --condition-noise {config['condition_noise']}" if config.get("condition_noise") else ""
    return (f"vot train sketcher --task {config['environment']} --preset {config['preset']} "
            f"--steps {config['steps']} --seed {config['seed']}{noise}{init} --out {out}")


def _describe(name: str) -> str:
    from imagegen.data import ENVIRONMENTS, navigation_task

    if name in ENVIRONMENTS:
        return f"{navigation_task(name)}: the navigation problems' gold plans"
    return f"{name}: the action sequences the MCQ problems state (what a reasoning chain sketches)"


def _sizes(environment: str):
    from imagegen.data import training_sizes

    return training_sizes(environment)


def _batch(preset: str) -> int:
    from imagegen.presets import get_preset

    return get_preset(preset).batch_size
