"""The SketchGenerator protocol and the reference sketchers."""
from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

from PIL import Image

import tasks
from tasks.parsing import action_sentence, parse_actions

NO_DIFFUSION = "n/a (no diffusion model)"


@runtime_checkable
class SketchGenerator(Protocol):
    """Draws the state after each thought, conditioned on the previous sketch.

    ``sketch(prev_images, thoughts, steps=…, generator=…)`` is batched: one output image per
    (previous image, thought) pair, same size as the previous image. ``produces_images`` is False for
    generators that draw nothing (text-only chains). ``label`` names it in results;
    ``attention_backend`` says how a diffusion model attends (``sdpa``, ``xformers``) or that there
    is no diffusion model."""

    label: str
    produces_images: bool
    default_steps: int
    attention_backend: str

    def sketch(self, prev_images: Sequence[Image.Image], thoughts: Sequence[str], *, steps: int | None = None,
               generator: Any = None) -> list[Image.Image]: ...


def check_sketch_inputs(prev_images: Sequence[Image.Image], thoughts: Sequence[str]) -> None:
    """Clear errors for mismatched batches, non-images and empty thoughts."""
    if len(prev_images) != len(thoughts):
        raise ValueError(f"got {len(prev_images)} previous images but {len(thoughts)} thoughts")
    for i, (image, thought) in enumerate(zip(prev_images, thoughts)):
        if not isinstance(image, Image.Image):
            raise TypeError(f"prev_images[{i}] is a {type(image).__name__}, expected a PIL.Image")
        if not isinstance(thought, str) or not thought.strip():
            raise ValueError(f"thoughts[{i}] is empty")


class OracleSketcher:
    """REFERENCE: perfect imagination. Reads the previous sketch with ``Task.read``, applies the
    action named in the thought with the simulator and renders the true next state. A thought that
    names no action leaves the state unchanged. Upper bound for sketch quality; never a default."""

    label = "oracle"
    produces_images = True
    attention_backend = NO_DIFFUSION
    default_steps = 0

    def __init__(self, task: str | tasks.Task):
        self.task = tasks.get(task)

    def sketch(self, prev_images, thoughts, *, steps=None, generator=None):
        check_sketch_inputs(prev_images, thoughts)
        out = []
        for image, thought in zip(prev_images, thoughts):
            out.append(self.task.render(self.task.imagine(self.task.read(image), thought)))
        return out


class BlankSketcher:
    """REFERENCE: draws nothing, so chains are text-only (the CoT ablation)."""

    label = "blank"
    produces_images = False
    attention_backend = NO_DIFFUSION
    default_steps = 0

    def sketch(self, prev_images, thoughts, *, steps=None, generator=None):
        check_sketch_inputs(prev_images, thoughts)
        return [None for _ in thoughts]


class SlipSketcher:
    """REFERENCE: an imperfect imagination with known errors. Like `OracleSketcher`, except that each
    sketch draws a random other action with probability ``slip``. The slip is drawn from the
    sketch's own ``torch.Generator`` (one per image, as `vot.reasoner.Reasoner` passes them), so a
    redrawn sketch (sketch-level search) can come out right, and the errors do not depend on
    batching. Called without generators it never slips."""

    produces_images = True
    default_steps = 0
    attention_backend = NO_DIFFUSION

    def __init__(self, task: str | tasks.Task, slip: float = 0.2):
        if not 0.0 <= slip <= 1.0:
            raise ValueError(f"slip must be in [0, 1], got {slip}")
        self.oracle, self.task, self.slip = OracleSketcher(task), tasks.get(task), slip
        self.label = f"slip-oracle({slip:g})"

    def sketch(self, prev_images, thoughts, *, steps=None, generator=None):
        import torch

        check_sketch_inputs(prev_images, thoughts)
        generators = list(generator) if isinstance(generator, (list, tuple)) else [generator] * len(thoughts)
        if len(generators) != len(thoughts):
            raise ValueError(f"got {len(generators)} generators for {len(thoughts)} images")
        drawn = []
        for thought, g in zip(thoughts, generators):
            named = parse_actions(thought, self.task.actions) or []
            if named and g is not None:
                u, pick = torch.rand(2, generator=g).tolist()
                if u < self.slip:
                    others = [a for a in self.task.actions if a not in named]
                    thought = action_sentence(others[int(pick * len(others))])
            drawn.append(thought)
        return self.oracle.sketch(prev_images, drawn)
