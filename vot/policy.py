"""The Policy protocol and the reference `SimulatedPolicy`.

A policy keeps one *context* per chain (for a language model: its KV cache). The loop calls
``begin`` once (prefill prompt + initial image), then alternates ``think`` (sample until a sketch
request or an answer) and ``observe`` (read the new sketch). ``fork`` copies a context so search
strategies can branch a partial chain. A policy owns how it reads images: its ``encoder`` (a
`vision_encoder.Encoder`, or ``None`` when it reads images another way or not at all) turns
each sketch into vision tokens inside ``observe``.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np
import torch
from PIL import Image

import tasks
from tasks import Problem


@dataclass
class Thought:
    """What one ``think`` call produced for one chain."""

    text: str
    logprobs: list[float]
    is_answer: bool


@runtime_checkable
class Policy(Protocol):
    """What the reasoning loop (`vot.reasoner.Reasoner`) calls; every call is batched over chains.

    Attributes:
        label: names the policy in logs and summaries.
        encoder: the vision encoder ``observe`` uses (its calls are counted as compute), or ``None``.
    """

    label: str
    encoder: Any

    def begin(self, problems: Sequence[Problem], samples: Sequence[int], *, greedy: bool = False) -> list[Any]:
        """One context per (problems[i], samples[i]) pair: the prompt and initial image prefilled."""

    def think(self, contexts: Sequence[Any]) -> list[Thought]:
        """Next thought of every context (batched)."""

    def observe(self, contexts: Sequence[Any], images: Sequence[Image.Image] | None,
                pixels: torch.Tensor | None = None) -> None:
        """Read each new sketch into its context. ``images`` is ``None`` for text-only chains;
        ``pixels`` (B, 3, H, W), when given, holds the same images as a device tensor (8-bit grid
        in [-1, 1]) for an encoder with ``encode_pixels``."""

    def fork(self, context: Any, branch: int) -> Any:
        """An independent copy of ``context`` whose future samples differ by ``branch``."""


@dataclass
class _SimContext:
    problem: Problem
    task: Any
    gold: list  # gold visual trace (TraceStep)
    lineage: tuple[int, ...]  # sample index, then one entry per fork
    step: int = 0
    erred: bool = False
    said: list[str] = field(default_factory=list)  # actions named so far
    last_image: Image.Image | None = field(default=None, repr=False)


class SimulatedPolicy:
    """REFERENCE: follows the gold trace but makes controlled random mistakes.

    Each thought (every action step and the final answer) is wrong independently with probability
    ``q``, chosen so that a chain is wrong with probability ``error_rate``:
    ``(1 - q) ** (steps + 1) = 1 - error_rate``. A wrong action step names a different action (the
    chain then goes on with the stated actions, from wherever its imagination put it); the answer of
    a chain that erred anywhere is a wrong option (the one its last sketch shows, if that is wrong,
    else a random wrong one); an answer-step slip alone names a random wrong option. Token
    log-probs are drawn lower for wrong thoughts (``confidence_gap`` nats on average), a noisy
    signal for the confidence verifier. All randomness is keyed on (seed, problem id, lineage,
    step): results do not depend on batching, order or resuming.

    ``trust_sketches=True`` makes an MCQ chain answer what its last sketch shows whenever that
    reads back as one of the options, as a policy that reasons from its imagination does: a
    misdrawn sketch then misleads a chain that thought right (the failure sketch-level search is
    for). With the default ``False`` sketches only steer chains that already erred.
    """

    label = "simulated"
    encoder = None  # it reads sketches back with the task's reader, not through vision tokens

    def __init__(self, error_rate: float = 0.3, seed: int = 0, confidence_gap: float = 1.0, trust_sketches: bool = False):
        if not 0.0 <= error_rate < 1.0:
            raise ValueError(f"error_rate must be in [0, 1), got {error_rate}")
        self.error_rate, self.seed, self.confidence_gap = error_rate, seed, confidence_gap
        self.trust_sketches = trust_sketches

    def begin(self, problems, samples, *, greedy=False):
        if len(problems) != len(samples):
            raise ValueError(f"got {len(problems)} problems but {len(samples)} sample indices")
        contexts = []
        for problem, sample in zip(problems, samples):
            task = tasks.get(problem.task)
            contexts.append(_SimContext(problem, task, task.trace(problem, "visual"), (int(sample),), last_image=problem.image))
        return contexts

    def fork(self, context: _SimContext, branch: int) -> _SimContext:
        return _SimContext(context.problem, context.task, context.gold, context.lineage + (int(branch),),
                           context.step, context.erred, list(context.said), context.last_image)

    def _rng(self, context: _SimContext) -> np.random.Generator:
        key = zlib.crc32(context.problem.id.encode())
        return np.random.default_rng([self.seed, key, context.step, *context.lineage])

    def _step_error(self, context: _SimContext) -> float:
        steps = len(context.gold)  # action steps + the answer
        return 1.0 - (1.0 - self.error_rate) ** (1.0 / steps)

    def think(self, contexts):
        return [self._think_one(c) for c in contexts]

    def _think_one(self, context: _SimContext) -> Thought:
        rng = self._rng(context)
        wrong = rng.random() < self._step_error(context)
        gold = context.gold[min(context.step, len(context.gold) - 1)]
        task = context.task
        if gold.action is None:  # the answer step
            text = self._answer(context, rng, wrong or context.erred)
            is_answer = True
        else:
            action = gold.action
            if wrong:
                action = str(rng.choice([a for a in task.actions if a != gold.action]))
            # the gold thought when right (it may be no move: "Fill the dead ends."), a move's sentence when wrong
            text = gold.thought if action == gold.action else tasks.parsing.action_sentence(action)
            if action in task.actions:
                context.said.append(action)
            is_answer = False
        context.erred |= wrong
        context.step += 1
        scale = 0.15 + (self.confidence_gap if wrong else 0.0)
        logprobs = (-np.abs(rng.normal(0.0, scale, size=len(text.split()) + 1))).tolist()
        return Thought(text, logprobs, is_answer)

    def _answer(self, context: _SimContext, rng: np.random.Generator, wrong: bool) -> str:
        task, problem = context.task, context.problem
        gold_text = context.gold[-1].thought
        if self.trust_sketches and task.kind == "mcq" and context.last_image is not None:
            seen = self._seen_answer(task, context.last_image)
            if seen in problem.options and not (wrong and seen == problem.answer):
                return task.answer_text(seen)
        if not wrong:
            return gold_text
        if task.kind == "nav":
            plan = list(context.said)
            if not context.erred:  # an answer-step slip: drop the last move
                plan = plan[:-1]
            return task.answer_text(plan)
        wrong_letters = [k for k in sorted(problem.options) if k != problem.answer]
        seen = self._seen_answer(task, context.last_image) if context.last_image is not None else None
        letter = seen if seen in wrong_letters else wrong_letters[int(rng.integers(len(wrong_letters)))]
        return task.answer_text(letter)

    @staticmethod
    def _seen_answer(task, image):
        """The option the image shows, or None when it does not read back."""
        try:
            return task.answer_for(task.read(image))
        except ValueError:
            return None

    def observe(self, contexts, images, pixels=None):
        for context, image in zip(contexts, images or [None] * len(contexts)):
            if image is not None:
                context.last_image = image

