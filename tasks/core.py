"""The nouns of the task suite: Problem, TraceStep, Score and the Task base class.

A `Task` is a grid world (state, render, read, step) plus a question format (multiple choice or
navigation). Everything here is pure Python + numpy + pillow: no torch.
"""
from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Sequence

import numpy as np
from PIL import Image

SCHEMA_VERSION = 1


class InvalidLayout(ValueError):
    """A layout (generated or imported) that breaks the task's rules."""


@dataclass
class Problem:
    """One question. Everything but the image is JSON-able; the image is re-rendered from `state`.

    Attributes:
        id: unique within a split, e.g. ``maze-mcq-v0/test/s5/000042``. Left empty (as
            ``from_layout`` leaves it), it becomes a deterministic content id,
            ``<task>/content/<hash of the question>`` (`content_key`), so problems built from
            external layouts never share an id (or a random key) unless they are the same question.
        task: registered task id (``maze-mcq-v0``).
        prompt: the text given to the model (question, action sequence, options).
        state: JSON form of the initial state (``Task.state_to_json``); the image is its render.
        answer: canonical gold answer text (an option letter for MCQ; actions joined by spaces for nav).
        options: letter -> option text for multiple choice, ``None`` for navigation.
        actions: the action sequence stated in the prompt (MCQ) or ``[]`` (nav).
        meta: size, split, seed, path length, difficulty and other task-specific facts.
    """

    id: str
    task: str
    prompt: str
    state: dict
    answer: str
    options: dict[str, str] | None = None
    actions: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if not self.id:
            digest = hashlib.sha1(f"{self.task}\n{self.content_key()}".encode()).hexdigest()[:16]
            self.id = f"{self.task}/content/{digest}"

    def content_key(self) -> str:
        """Identity of the whole question: initial state (layout included), stated actions, answer
        and options."""
        return json.dumps([self.state, self.actions, self.answer, self.options], sort_keys=True)

    @property
    def image(self) -> Image.Image:
        """The initial image, rendered from ``state`` by the registered task."""
        from tasks.registry import get

        task = get(self.task)
        return task.render(task.state_from_json(self.state))

    def to_json(self) -> dict:
        return {"schema": SCHEMA_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, record: dict) -> "Problem":
        record = dict(record)
        schema = record.pop("schema", SCHEMA_VERSION)
        if schema != SCHEMA_VERSION:
            raise ValueError(f"problem schema {schema} is not supported (expected {SCHEMA_VERSION})")
        return cls(**record)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)


@dataclass(frozen=True)
class TraceStep:
    """One step of a gold chain: the thought text, the action it names, and the state after it."""

    thought: str
    action: str | None
    state: Any


@dataclass
class Score:
    """The grade of one answer, keeping the extracted answer beside it.

    ``correct`` is accuracy for MCQ and exact match for navigation. ``parse_failed`` is True when no
    answer could be extracted (then ``correct`` is False). Navigation also fills ``progress``
    (fraction of the optimal plan made good from the start), ``valid`` (no invalid move) and
    ``reached`` (ends at the goal).
    """

    correct: bool
    parsed: Any
    parse_failed: bool = False
    progress: float | None = None
    valid: bool | None = None
    reached: bool | None = None


class Task(ABC):
    """A registered spatial task. Subclasses set the class attributes and implement the methods.

    States are immutable, hashable, comparable values (frozen dataclasses), so
    ``task.read(task.render(s)) == s`` is the round-trip contract.
    """

    id: ClassVar[str]
    description: ClassVar[str]
    kind: ClassVar[str]  # "mcq" or "nav"
    actions: ClassVar[tuple[str, ...]]
    min_size: ClassVar[int]
    max_size: ClassVar[int]
    in_distribution: ClassVar[tuple[int, ...]]
    out_of_distribution: ClassVar[tuple[int, ...]]
    cell_px: ClassVar[int] = 8
    stream_id: ClassVar[str | None] = None  # draw another task's problem streams (a version that only thinks differently)

    # --- generation -------------------------------------------------------------------------
    @abstractmethod
    def generate(self, rng: np.random.Generator, size: int) -> Problem:
        """A new random problem of side ``size``; all randomness from ``rng``."""

    def check_size(self, size: int) -> None:
        if not isinstance(size, (int, np.integer)) or not self.min_size <= size <= self.max_size:
            raise ValueError(
                f"{self.id}: size must be an integer in [{self.min_size}, {self.max_size}], got {size!r}"
            )

    # --- world ------------------------------------------------------------------------------
    @abstractmethod
    def render(self, state) -> Image.Image:
        """Flat-colour RGB image of ``state``; sides are multiples of 8."""

    @abstractmethod
    def read(self, image: Image.Image):
        """Perceive the state drawn in ``image`` (tolerates noise and slight blur)."""

    @abstractmethod
    def step(self, state, action: str):
        """Simulate one action with the environment's semantics."""

    @abstractmethod
    def is_valid(self, state, action: str) -> bool:
        """Whether ``action`` is a legal move in ``state`` (no wall bump, not after the episode ended)."""

    @abstractmethod
    def state_to_json(self, state) -> dict: ...

    @abstractmethod
    def state_from_json(self, record: dict): ...

    def initial_state(self, problem: Problem):
        return self.state_from_json(problem.state)

    sketch_thoughts: tuple[str, ...] = ()  # visual thoughts that are not actions (a dead-end fill), as the gold chain writes them

    def is_sketch_thought(self, thought: str) -> bool:
        """Whether ``thought`` is a visual thought that takes no action (one of ``sketch_thoughts``):
        the one rule the sketcher's oracle (`imagine`), the walked plan and the verifiers share."""
        return thought in self.sketch_thoughts

    def imagine(self, state, thought: str):
        """The state a visual thought leads to, as a perfect sketcher draws it: the actions the
        thought names, applied in order (none: unchanged). A variant whose thoughts do more than
        act (dead-end filling, `tasks.maze_fill`) overrides this."""
        from tasks.parsing import parse_actions

        for action in parse_actions(thought, self.actions) or []:
            state = self.step(state, action)
        return state

    def describe(self, state) -> str:
        """The state in words for text chain-of-thought ("Now at row 2, column 3.")."""
        raise NotImplementedError(f"{self.id} does not describe states in words (needed for text traces)")

    @abstractmethod
    def marked_cells(self, state) -> frozenset:
        """Cells carrying a mark that moves with the chain (agent, trail, carried object)."""

    # --- traces and answers -----------------------------------------------------------------
    @abstractmethod
    def trace(self, problem: Problem, style: str = "visual") -> list[TraceStep]:
        """Gold chain. ``visual``: short thoughts, each followed by the state sketch.
        ``text``: chain-of-thought that spells the state out in words (coordinates, carrying)."""

    @abstractmethod
    def parse_answer(self, text: str):
        """Extract the answer from free text; ``None`` means the text could not be parsed."""

    @abstractmethod
    def check(self, problem: Problem, text: str) -> Score:
        """Grade ``text`` against ``problem``; never raises on bad text."""

    def layout_key(self, problem: Problem) -> str:
        """Identity of the environment layout (used to split train/test by layout)."""
        return json.dumps(problem.state.get("layout"), sort_keys=True)

    def problem_key(self, problem: Problem) -> str:
        """Identity of the whole question (used to de-duplicate within a split)."""
        return problem.content_key()

    def rollout(self, state, actions: Sequence[str]) -> list:
        """States after each action (length ``len(actions)``)."""
        states = []
        for action in actions:
            state = self.step(state, action)
            states.append(state)
        return states

    def __repr__(self) -> str:
        return f"<Task {self.id}>"
