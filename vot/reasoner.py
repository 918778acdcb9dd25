"""The batched reasoning loop: thought -> sketch -> vision tokens -> next thought.

`Reasoner.advance` moves every active chain of every problem one step with one batched policy call,
one batched sketch call and one batched encode per image size, and one observe. Chains finish
independently; a chain that hits ``max_steps`` is recorded as unfinished instead of failing the run.

Sketch noise is keyed per chain and step (`vot.keys.sketch_seed` of the seed, the problem id, the
chain's lineage and the step), as token sampling is, so a chain does not depend on batching, order,
resuming or what ran before. A `SketchSearch` draws up to ``candidates`` sketches per step with
independent noise and keeps the first one its verifier accepts (or the best-scored one).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from PIL import Image

import tasks
from tasks import Problem
from vot.bundle import check_answer
from vot.chain import Chain, Step
from vot.keys import sketch_generator

StepCallback = Callable[[Chain, Step], None]


@dataclass
class Running:
    """A chain being grown, with the policy's context for it and its latest image."""

    chain: Chain
    context: Any
    image: Image.Image
    problem: Problem
    done: bool = False
    branches: int = field(default=0, repr=False)
    snapshots: list | None = field(default=None, repr=False)  # (context, image) before each step, for rewind
    lineage: tuple[int, ...] = ()  # (sample, fork branch, ...): keys this chain's sketch noise
    pixels: Any = field(default=None, repr=False)  # ``image`` as a device tensor (3, H, W), when the loop keeps one


@dataclass(frozen=True)
class SketchSearch:
    """Sketch-level search: at every step draw up to ``candidates`` sketches, each with its own
    noise key, one after another, and keep the first whose step the ``verifier`` scores at least
    ``accept`` (else the best-scored one, the earliest on ties). Every draw is counted in the
    chain's compute. The verifier must check sketches (``verifier.checks_sketches``)."""

    candidates: int = 1
    verifier: Any = None
    accept: float = 0.5

    def __post_init__(self):
        if isinstance(self.candidates, bool) or not isinstance(self.candidates, int) or self.candidates < 1:
            raise ValueError(f"sketch_candidates must be a positive integer, got {self.candidates!r}")
        if self.candidates > 1 and not getattr(self.verifier, "checks_sketches", False):
            label = getattr(self.verifier, "label", self.verifier)
            raise ValueError(f"sketch search needs a verifier that checks sketches (consistency), not {label!r}")

    @property
    def active(self) -> bool:
        return self.candidates > 1


class Reasoner:
    """A policy and a sketcher, advanced together (the policy reads each sketch with its own
    ``encoder``; see `vot.policy.Policy`). `vot.load` and `vot.components.build_reasoner` build
    one from a bundle or from component names.

    Args:
        policy: a `vot.policy.Policy`.
        sketcher: an `imagegen.SketchGenerator` (``produces_images=False`` gives text-only chains).
        max_steps: thoughts per chain before it is stopped and marked unfinished.
        sketch_steps: denoising steps per sketch (default: the sketcher's own).
        seed: with the problem id, the chain's lineage and the step, keys each sketch's noise; the
            sketcher gets one ``torch.Generator`` per image.
        sketches_on_device: keep sketches as device tensors from the sketcher to the policy's
            encoder when both support it (`on_device`); False goes through PIL images (the same pixels).
        answer: ``written`` (a chain answers what its answer thought writes) or ``walked``: a
            planning chain answers the plan its thoughts walked (`tasks.formats.NavFormat.walked_plan`,
            VPRL's reading of a plan off the trajectory), and the policy's answer thought only ends
            the chain (``chain.meta["answer"]`` is ``"walked"``; the written text is kept in
            ``chain.meta["written_answer"]`` when it differs).
            Multiple-choice chains always answer what they write, and so does a chain with no
            thought before its answer (a direct policy's: it walked nothing).
        task: the task whose chains the policy writes, when it is another version of each problem's
            own task (a ``maze-nav-v1`` policy fills dead ends on ``maze-nav-v0`` problems): each
            chain's ``task`` names it, so verifiers and viewers read its sketches under that
            version's rules. Default: the problem's task.
    """

    def __init__(self, policy, sketcher, *, max_steps: int = 64, sketch_steps: int | None = None,
                 seed: int = 0, sketches_on_device: bool = True, answer: str = "written", task: str | None = None):
        if max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {max_steps}")
        check_answer(answer)
        self.answer = answer
        self.task = task
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.policy, self.sketcher = policy, sketcher
        self.max_steps = max_steps
        self.sketch_steps = sketch_steps if sketch_steps is not None else getattr(sketcher, "default_steps", 0)
        self.seed = seed
        self.sketches_on_device = sketches_on_device
        self.callbacks: list[StepCallback] = []

    def on_step(self, callback: StepCallback) -> StepCallback:
        """Register ``callback(chain, step)``, called after each new step (for notebooks)."""
        self.callbacks.append(callback)
        return callback

    @property
    def label(self) -> str:
        return f"{self.policy.label}+{self.sketcher.label}"

    @property
    def encoder(self):
        """The policy's vision encoder (``None`` when it reads sketches another way)."""
        return getattr(self.policy, "encoder", None)

    @property
    def attention_backend(self) -> str:
        """The sketcher's attention backend (``sdpa``, ``xformers``, ``none``) or why there is none."""
        return getattr(self.sketcher, "attention_backend", "unknown")

    # --- building blocks for strategies ------------------------------------------------------
    def start(self, problems: Sequence[Problem], samples: Sequence[int], *, greedy: bool = False,
              snapshots: bool = False) -> list[Running]:
        """One running chain per (problems[i], samples[i]); ``snapshots`` keeps a copy of the
        policy context before every step so the chain can be rewound (refinement)."""
        began = time.perf_counter()
        contexts = self.policy.begin(problems, samples, greedy=greedy)
        share = (time.perf_counter() - began) / max(len(problems), 1)
        running = []
        for problem, sample, context in zip(problems, samples, contexts):
            chain = Chain(problem.id, self._chain_task(problem), int(sample))
            chain.compute.wall_seconds += share
            running.append(Running(chain, context, problem.image, problem, snapshots=[] if snapshots else None,
                                   lineage=(int(sample),)))
        return running

    def fork(self, item: Running, sample: int) -> Running:
        """A copy of a partial chain that continues independently."""
        item.branches += 1
        context = self.policy.fork(item.context, item.branches)
        snapshots = list(item.snapshots) if item.snapshots is not None else None
        return Running(item.chain.fork(sample), context, item.image, item.problem, item.done, snapshots=snapshots,
                       lineage=item.lineage + (item.branches,), pixels=item.pixels)

    def rewind(self, item: Running, keep_steps: int, sample: int) -> Running:
        """A new chain that keeps the first ``keep_steps`` steps of ``item`` and resamples from
        there. ``item`` must have been started with snapshots (``start(..., snapshots=True)``)."""
        if item.snapshots is None or not 0 <= keep_steps < len(item.snapshots):
            raise ValueError(f"cannot rewind to step {keep_steps}: the chain kept no snapshot there")
        context, image = item.snapshots[keep_steps]
        item.branches += 1
        return Running(item.chain.fork(sample, keep_steps=keep_steps), self.policy.fork(context, item.branches), image,
                       item.problem, snapshots=list(item.snapshots[:keep_steps]), lineage=item.lineage + (item.branches,))

    def advance(self, running: Sequence[Running], search: SketchSearch | None = None) -> None:
        """One step for every chain not yet done (with sketch-level ``search`` if given)."""
        active = [r for r in running if not r.done]
        if not active:
            return
        for item in active:
            if item.snapshots is not None:
                item.branches += 1
                item.snapshots.append((self.policy.fork(item.context, 10_000 + item.branches), item.image))
        began = time.perf_counter()
        thoughts = self.policy.think([r.context for r in active])
        think_share = (time.perf_counter() - began) / len(active)
        drawing = []
        for item, thought in zip(active, thoughts):
            step = Step(thought.text, list(thought.logprobs), is_answer=thought.is_answer)
            item.chain.steps.append(step)
            item.chain.compute.policy_tokens += len(thought.logprobs)
            item.chain.compute.wall_seconds += think_share
            item.chain.compute.policy_seconds += think_share
            if thought.is_answer:
                item.chain.answer, item.chain.finished, item.done = self._answer(item, thought.text), True, True
            elif len(item.chain.steps) >= self.max_steps:
                item.done = True
                item.chain.meta["stopped"] = "max_steps"
            else:
                drawing.append(item)
        self._sketch_and_observe(drawing, search)
        for item in active:
            for callback in self.callbacks:
                callback(item.chain, item.chain.steps[-1])

    def _chain_task(self, problem: Problem) -> str:
        """The id of the task a chain on ``problem`` is written under (see ``task`` in the class docstring)."""
        if self.task is not None and tasks.registry.family(self.task) == tasks.registry.family(problem.task):
            return self.task
        return problem.task

    def _answer(self, item: Running, written: str) -> str:
        """The chain's answer when its policy writes ``written`` (see ``answer`` in the class docstring)."""
        task = tasks.get(item.chain.task)
        walked_any = any(not s.is_answer for s in item.chain.steps)
        if self.answer == "written" or task.kind != "nav" or not walked_any:
            return written
        walked = task.answer_text(task.walked_plan([s.thought for s in item.chain.steps if not s.is_answer]))
        item.chain.meta["answer"] = "walked"
        if walked != written:
            item.chain.meta["written_answer"] = written
        return walked

    def _sketch_and_observe(self, drawing: list[Running], search: SketchSearch | None = None) -> None:
        if not drawing:
            return
        if not self.sketcher.produces_images:
            self.policy.observe([r.context for r in drawing], None, None)
            return
        by_size: dict[tuple[int, int], list[Running]] = {}
        for item in drawing:
            by_size.setdefault(item.image.size, []).append(item)
        for group in by_size.values():
            began = time.perf_counter()
            draws = [int(bool(r.chain.steps[-1].thought.strip())) for r in group]  # an empty thought draws nothing
            images, pixels = self._draw(group, 0)
            if search is not None and search.active:
                images, pixels, draws = self._search(group, images, pixels, search)
            # the sketches never left the device when ``pixels`` is set: (B, 3, H, W)
            self.policy.observe([r.context for r in group], images, torch.stack(pixels) if pixels is not None else None)
            share = (time.perf_counter() - began) / max(sum(draws), 1)  # a chain pays for each sketch it drew
            for row, (item, image, drawn) in enumerate(zip(group, images, draws)):
                item.image = image
                item.pixels = pixels[row] if pixels is not None else None
                item.chain.steps[-1].sketch = image
                compute = item.chain.compute
                compute.sketches += drawn
                compute.denoising_steps += drawn * self.sketch_steps
                compute.encoder_calls += int(self.encoder is not None)
                compute.wall_seconds += share * drawn
                compute.sketch_seconds += share * drawn

    @property
    def on_device(self) -> bool:
        """Whether sketches stay device tensors from the sketcher to the policy's encoder (a sketcher
        with ``sketch_pixels`` and an encoder with ``encode_pixels``); PIL images are still made for the
        chain's log, the verifiers and the readers."""
        return (self.sketches_on_device and hasattr(self.sketcher, "sketch_pixels")
                and hasattr(self.encoder, "encode_pixels"))

    def _draw(self, group: Sequence[Running], candidate: int):
        """One sketch per chain of ``group`` (one image size), noise keyed per chain, step and
        candidate: (PIL images, device tensors (3, H, W) or None off the device path)."""
        out = [r.image for r in group]  # an empty thought names nothing to draw: the sketch stays as it was
        drawing = [i for i, r in enumerate(group) if r.chain.steps[-1].thought.strip()]
        pixels = None
        if self.on_device:
            from imagegen.pipeline import images_to_tensor

            device = getattr(self.sketcher, "device", "cpu")
            pixels = [r.pixels if r.pixels is not None else images_to_tensor([r.image])[0].to(device) for r in group]
        if drawing:
            generators = [sketch_generator(self.seed, group[i].problem.id, group[i].lineage, len(group[i].chain.steps), candidate)
                          for i in drawing]
            thoughts = [group[i].chain.steps[-1].thought for i in drawing]
            if pixels is not None:
                from imagegen.pipeline import tensor_to_images

                prev = torch.stack([pixels[i] for i in drawing])  # (N, 3, H, W)
                drawn = self.sketcher.sketch_pixels(prev, thoughts, steps=self.sketch_steps, generator=generators)
                images = tensor_to_images(drawn)  # one transfer to the host, for the log and the readers
                for row, i in enumerate(drawing):
                    pixels[i] = drawn[row]
            else:
                images = self.sketcher.sketch([group[i].image for i in drawing], thoughts, steps=self.sketch_steps,
                                              generator=generators)
            for i, image in zip(drawing, images):
                out[i] = image
        return out, pixels

    def _search(self, group: list[Running], images: list[Image.Image], pixels, search: SketchSearch):
        """Redraw the sketches the verifier rejects, up to ``search.candidates`` draws per chain."""

        def score(item: Running, image: Image.Image) -> float:
            step = item.chain.steps[-1]
            step.sketch = image
            value = float(search.verifier.step_scores(item.problem, item.chain)[-1])
            step.sketch = None
            return value

        best = list(images)
        best_pixels = list(pixels) if pixels is not None else None
        scores = [score(item, image) for item, image in zip(group, images)]
        draws = [int(bool(r.chain.steps[-1].thought.strip())) for r in group]
        pending = [i for i, value in enumerate(scores) if value < search.accept and draws[i]]  # nothing to redraw for an empty thought
        for candidate in range(1, search.candidates):
            if not pending:
                break
            drawn, drawn_pixels = self._draw([group[i] for i in pending], candidate)
            for row, (i, image) in enumerate(zip(pending, drawn)):
                draws[i] += 1
                value = score(group[i], image)
                if value > scores[i]:
                    best[i], scores[i] = image, value
                    if best_pixels is not None:
                        best_pixels[i] = drawn_pixels[row]
            pending = [i for i in pending if scores[i] < search.accept]
        return best, best_pixels, draws

    def complete(self, running: Sequence[Running], search: SketchSearch | None = None) -> None:
        """Advance until every chain is done (answered or stopped at ``max_steps``)."""
        while any(not r.done for r in running):
            self.advance(running, search)

    # --- the plain loop -----------------------------------------------------------------------
    def run(self, problems: Sequence[Problem], n: int = 1, *, greedy: bool = False,
            search: SketchSearch | None = None) -> list[list[Chain]]:
        """``n`` independent chains per problem, all advanced together; problem-major output."""
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        flat = [p for p in problems for _ in range(n)]
        running = self.start(flat, [i for _ in problems for i in range(n)], greedy=greedy)
        self.complete(running, search)
        return [[r.chain for r in running[i * n:(i + 1) * n]] for i in range(len(problems))]


def greedy_correct(reasoner: Reasoner, problems: Sequence[Problem], batch: int = 64) -> list[bool]:
    """Whether each problem's greedy chain answers it right (its task's check), ``batch`` problems
    at a time: the greedy evaluation of `vot improve` and of `benchmarks/independent_check.py`."""
    import tasks

    correct = []
    for start in range(0, len(problems), batch):
        chunk = problems[start:start + batch]
        for problem, chains in zip(chunk, reasoner.run(chunk, 1, greedy=True)):
            answer = chains[0].answer
            correct.append(answer is not None and tasks.get(problem.task).check(problem, answer).correct)
    return correct
