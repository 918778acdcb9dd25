"""The SketchGenerator protocol and the reference sketchers."""
from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

from PIL import Image

import tasks
from tasks.parsing import parse_actions


@runtime_checkable
class SketchGenerator(Protocol):
    """Draws the state after each thought, conditioned on the previous sketch.

    ``sketch(prev_images, thoughts, steps=…, generator=…)`` is batched: one output image per
    (previous image, thought) pair, same size as the previous image. ``produces_images`` is False for
    generators that draw nothing (text-only chains). ``label`` names it in results."""

    label: str
    produces_images: bool
    default_steps: int

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
    default_steps = 0

    def __init__(self, task: str | tasks.Task):
        self.task = tasks.get(task)

    def sketch(self, prev_images, thoughts, *, steps=None, generator=None):
        check_sketch_inputs(prev_images, thoughts)
        out = []
        for image, thought in zip(prev_images, thoughts):
            state = self.task.read(image)
            for action in parse_actions(thought, self.task.actions) or []:
                state = self.task.step(state, action)
            out.append(self.task.render(state))
        return out


class BlankSketcher:
    """REFERENCE: draws nothing, so chains are text-only (the CoT ablation)."""

    label = "blank"
    produces_images = False
    default_steps = 0

    def sketch(self, prev_images, thoughts, *, steps=None, generator=None):
        check_sketch_inputs(prev_images, thoughts)
        return [None for _ in thoughts]
