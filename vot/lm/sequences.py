"""Problems and their gold traces as policy token sequences (the training format).

One sequence per problem::

    <bos> prompt <1> action-1 <2> action-2 ... <img> [T vision slots] </img>   (the context; no loss)
    vot:    <1> thought <eot> <img> [T slots] </img> <2> ...  <k> answer <eos>
    cot:    <1> thought-with-coordinates <eot> <2> ...        <k> answer <eos>
    direct:                                                   <1> answer <eos>

The input template restates the problem's stated actions (``Problem.actions``, the same information
as the prompt's action sentence) with index tokens, and the runtime puts the index token ``<k>``
before the k-th thought, the way a chat template adds turn headers. Without them a small model has
to count sentences in the prompt and thoughts in its chain to know which action comes next, and on
two CPU cores it did not learn that in 500 steps (maze val accuracy at chance); with them the k-th
step is an exact token match.

Training renumbers a share of the examples (``--index-shift-share``, `vot.lm.train.shift_indices`):
``<k>`` becomes ``<k+o>`` throughout one sequence, so every index embedding up to ``<64>`` is trained,
not only the low ones short chains use; the runtime always numbers from ``<1>``.

Loss falls on the thoughts, ``<eot>`` and ``<eos>`` only: the policy writes those; the index
tokens and sketches are given. The same layout is produced token by token at inference
(`vot.lm.policy`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

import tasks
from tasks import Problem
from vot.lm.model import IMAGE_SLOT, MODES
from vot.lm.tokenizer import WordTokenizer

IGNORE = -100


@dataclass
class Example:
    """ids and labels (L,), and the images whose vision tokens fill the IMAGE_SLOT positions."""

    ids: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)  # uint8 (H, W, 3), in order
    answer: list[bool] = field(default_factory=list)  # (L,) True on the answer's tokens
    exact: list[bool] = field(default_factory=list)  # per image: an exact render (not a sketcher's drawing)

    def add(self, ids: list[int], supervised: bool, answer: bool = False) -> None:
        self.ids += ids
        self.labels += ids if supervised else [IGNORE] * len(ids)
        self.answer += [answer] * len(ids)

    def add_image(self, image: np.ndarray, tokenizer: WordTokenizer, patch: int, canvas: int = 0,
                  exact: bool = True) -> None:
        """Slots for ``image`` padded (bottom/right) to a multiple of ``patch`` and at least ``canvas`` px.
        ``exact``: the image is a task render, whose perception targets (`PolicyModel.cell_colours`)
        are what the cells are; a sketcher's drawing is not (a cell mean near a lattice threshold flips)."""
        height, width = max(image.shape[0], canvas), max(image.shape[1], canvas)
        slots = -(-height // patch) * -(-width // patch)
        self.add([tokenizer.img] + [IMAGE_SLOT] * slots + [tokenizer.img_end], supervised=False)
        self.images.append(image)
        self.exact.append(exact)


def trace_style(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; available: {', '.join(MODES)}")
    return "text" if mode == "cot" else "visual"


def context_ids(problem: Problem, tokenizer: WordTokenizer) -> list[int]:
    """The prompt part of the prefix (before the image): the prompt, then the indexed actions."""
    from tasks.parsing import action_sentence

    ids = [tokenizer.bos] + tokenizer.encode(problem.prompt)
    for k, action in enumerate(problem.actions, start=1):
        ids += [tokenizer.index(k)] + tokenizer.encode(action_sentence(action))
    return ids


def build_example(problem: Problem, mode: str, tokenizer: WordTokenizer, patch: int,
                  sketches: list[Image.Image | np.ndarray] | None = None, canvas: int = 0) -> Example:
    """The teacher-forced sequence of ``problem`` in ``mode``. In vot mode ``sketches`` (one per
    action step) replace the gold renders, e.g. the trained sketcher's own rollout. ``canvas`` > 0
    sizes every image's slots as if padded to ``canvas`` px a side (the trainer pads the pixels to
    match: images larger than the task's in-distribution sizes, see `vot.lm.train`)."""
    task = tasks.get(problem.task)
    trace = task.trace(problem, trace_style(mode))
    if mode == "direct":
        trace = trace[-1:]
    actions = [s for s in trace if s.action is not None]
    if sketches is not None and len(sketches) != len(actions):
        raise ValueError(f"{problem.id}: {len(sketches)} sketches for {len(actions)} action steps")
    steps = []
    for i, step in enumerate(trace):
        image = None
        if step.action is not None and mode == "vot":
            image = sketches[i] if sketches is not None else task.render(step.state)
        steps.append((step.thought, image, step.action is None))
    return sequence_example(problem, steps, tokenizer, patch, canvas, sketched=sketches is not None)


def chain_example(problem: Problem, chain, tokenizer: WordTokenizer, patch: int, canvas: int = 0) -> Example:
    """A reasoning chain's own thoughts and sketches (`vot.chain.Chain`) as a training sequence, in
    the same layout as a gold trace's: self-improvement and distillation train on kept chains."""
    if not chain.steps or not chain.steps[-1].is_answer:
        raise ValueError(f"{problem.id}: chain {chain.sample} has no answer step to train on")
    # a chain that answered the plan it walked (`vot.reasoner.Reasoner` ``answer``) teaches that answer
    steps = [(chain.answer if s.is_answer and chain.answered_walked else s.thought, s.sketch, s.is_answer) for s in chain.steps]
    return sequence_example(problem, steps, tokenizer, patch, canvas, sketched=True)


def sequence_example(problem: Problem, steps, tokenizer: WordTokenizer, patch: int, canvas: int = 0,
                     sketched: bool = False) -> Example:
    """The sequence of ``problem``'s context and ``steps``, each (thought, sketch or None, is_answer);
    ``sketched``: the steps' images are a sketcher's, not exact renders (the problem's image always is)."""
    example = Example()
    example.add(context_ids(problem, tokenizer), supervised=False)
    example.add_image(np.asarray(problem.image.convert("RGB")), tokenizer, patch, canvas)
    for i, (thought, image, is_answer) in enumerate(steps):
        example.add([tokenizer.index(i + 1)], supervised=False)
        example.add(tokenizer.encode(thought) + [tokenizer.eos if is_answer else tokenizer.eot], supervised=True,
                    answer=is_answer)
        if image is not None and not is_answer:
            example.add_image(np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image),
                              tokenizer, patch, canvas, exact=not sketched)
    return example


def corpus(problems: list[Problem]) -> list[str]:
    """Every text the tokenizer must cover: prompts, both trace styles, every action sentence and
    every option's answer."""
    from tasks.parsing import action_sentence

    texts = []
    for problem in problems:
        task = tasks.get(problem.task)
        texts += [problem.prompt] + [action_sentence(a) for a in task.actions]
        texts += [task.answer_text(letter) for letter in problem.options or {}]
        for style in ("visual", "text"):
            texts += [s.thought for s in task.trace(problem, style)]
    return texts
