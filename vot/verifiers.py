"""Verifiers score (partial) chains. Their label is recorded with every selection they make.

- ``vote``: agreement, the share of the pool giving the same answer (chain level only).
- ``confidence``: the policy's own token log-probs, exp(mean) per step.
- ``consistency``: reads the chain's sketches back with ``Task.read`` and checks each against the
  thought before it and the rules visible in the problem's input (the stated actions, the walls,
  the legal moves), and the answer against the last sketch. Never looks at the gold answer.
- ``learned``: a small trained process reward model (`vot.learned_verifier`): P(step right) from the
  step's thought and the vision tokens of its sketch; the shipped one of each MCQ task loads by name.
- ``oracle``: the gold answer. Only for pass@k; never used for a reported selection.
"""
from __future__ import annotations

import math
import weakref
from collections import Counter
from typing import Sequence

import tasks
from tasks import Problem
from tasks.parsing import parse_actions
from vot.chain import Chain

AGGREGATES = ("last", "min", "prod", "mean")


def aggregate(scores: Sequence[float], how: str) -> float:
    """Combine step scores: last, min, prod or mean (1.0 for no steps)."""
    if how not in AGGREGATES:
        raise ValueError(f"unknown aggregation {how!r}; expected one of {AGGREGATES}")
    if not scores:
        return 1.0
    if how == "last":
        return float(scores[-1])
    if how == "min":
        return float(min(scores))
    if how == "prod":
        return float(math.prod(scores))
    return float(sum(scores) / len(scores))


def answer_key(problem: Problem, text: str | None):
    """Hashable parsed answer (None when unparseable) for voting."""
    if text is None:
        return None
    parsed = tasks.get(problem.task).parse_answer(text)
    return tuple(parsed) if isinstance(parsed, list) else parsed


class Verifier:
    """Base: ``step_scores`` for process scoring (beam, dvts, refine), ``score`` for a whole chain."""

    label = "verifier"
    step_level = True
    checks_sketches = False  # whether a step's score depends on its sketch (sketch-level search needs it)

    def step_scores(self, problem: Problem, chain: Chain) -> list[float]:
        """One score in [0, 1] per step of ``chain`` (1 = the step looks right), read-only."""
        raise NotImplementedError(f"the {self.label} verifier has no step-level scores")

    def score(self, problem: Problem, chain: Chain, pool: Sequence[Chain] = (), how: str = "min") -> float:
        """The chain's score in [0, 1]: its step scores combined by ``how`` (`aggregate`: ``min``,
        ``mean``, ``prod``, ``last``). Side effect: each step's score is written to
        ``step.scores[self.label]``, which the run log, the report and the viewer show. ``pool``
        (the problem's other chains) is used only by pool-level verifiers (vote)."""
        scores = self.step_scores(problem, chain)
        for step, value in zip(chain.steps, scores):
            step.scores[self.label] = value
        return aggregate(scores, how)


class VoteVerifier(Verifier):
    label = "vote"
    step_level = False

    def score(self, problem, chain, pool=(), how="min"):
        if not pool:
            raise ValueError("the vote verifier needs the pool of chains to compare against")
        mine = answer_key(problem, chain.answer)
        if mine is None:
            return 0.0
        return sum(answer_key(problem, other.answer) == mine for other in pool) / len(pool)


class ConfidenceVerifier(Verifier):
    label = "confidence"

    def step_scores(self, problem, chain):
        return [math.exp(sum(s.logprobs) / len(s.logprobs)) if s.logprobs else 1.0 for s in chain.steps]


class ConsistencyVerifier(Verifier):
    """1.0 for a right step, 0.0 otherwise. A step is right when its thought names one action that the
    problem allows there and its sketch reads back as the simulator's state after that action from
    the previous sketch's state; an answer is right when it matches what the last sketch shows.

    What a problem allows: for MCQ, the action the prompt states at that position, whatever its
    effect, since the rules decide it (a wall bump or an action after the episode ended is a right
    thought with an unchanged sketch); for navigation, a legal move (an invalid move in a plan is a
    wrong step). Text-only chains have no sketches to check: their steps are checked against the
    prompt and the rules only."""

    label = "consistency"
    checks_sketches = True

    def __init__(self):
        self._seen: dict[int, tuple] = {}  # id(sketch) -> (weakref, state read back); search re-scores prefixes

    def _read(self, task, sketch):
        cached = self._seen.get(id(sketch))
        if cached is not None and cached[0]() is sketch:
            return cached[1]
        try:
            state = task.read(sketch)
        except ValueError:
            state = None
        key = id(sketch)
        self._seen[key] = (weakref.ref(sketch, lambda _, key=key: self._seen.pop(key, None)), state)
        return state

    def step_scores(self, problem: Problem, chain: Chain) -> list[float]:
        task = tasks.get(problem.task)
        state = task.initial_state(problem)  # what the input image shows
        scores, position = [], 0
        for step in chain.steps:
            if step.is_answer:
                scores.append(self._answer_ok(task, problem, state, step.thought, chain))
                continue
            actions = parse_actions(step.thought, task.actions) or []
            ok = len(actions) == 1
            if ok and task.kind == "mcq":
                ok = position < len(problem.actions) and actions[0] == problem.actions[position]
            elif ok:
                ok = task.is_valid(state, actions[0])
            expected = task.step(state, actions[0]) if ok else state
            if step.sketch is not None:
                seen = self._read(task, step.sketch)
                ok = ok and seen == expected
                state = seen if seen is not None else expected
            else:
                state = expected
            position += 1
            scores.append(1.0 if ok else 0.0)
        return scores

    def _answer_ok(self, task, problem, state, text, chain) -> float:
        parsed = task.parse_answer(text)
        if parsed is None:
            return 0.0
        if task.kind == "mcq":
            if len(problem.actions) != sum(not s.is_answer for s in chain.steps):
                return 0.0
            return 1.0 if task.answer_for(state) == parsed else 0.0
        said = [a for s in chain.steps if not s.is_answer for a in (parse_actions(s.thought, task.actions) or [])]
        return 1.0 if list(parsed) == said and task.is_goal(problem, state) else 0.0


class OracleVerifier(Verifier):
    """Gold answer: 1.0 if correct. For pass@k only."""

    label = "oracle"
    step_level = False

    def score(self, problem, chain, pool=(), how="min"):
        return 1.0 if chain.answer is not None and tasks.get(problem.task).check(problem, chain.answer).correct else 0.0


def learned(model_dir=None, **kwargs) -> Verifier:
    """The ``learned`` verifier (`vot.learned_verifier.LearnedVerifier`, imported on first use: it
    needs torch). Without ``model_dir`` it loads the shipped model of each problem's task lazily."""
    from vot.learned_verifier import LearnedVerifier

    return LearnedVerifier(model_dir, **kwargs)


learned.label = "learned"

VERIFIERS = {"vote": VoteVerifier, "confidence": ConfidenceVerifier, "consistency": ConsistencyVerifier,
             "learned": learned, "oracle": OracleVerifier}


def get_verifier(name: str, **kwargs) -> Verifier:
    """A verifier by label; ``kwargs`` go to its constructor (``model_dir=`` for ``learned``)."""
    if name not in VERIFIERS:
        raise ValueError(f"unknown verifier {name!r}; available: {', '.join(VERIFIERS)}")
    return VERIFIERS[name](**kwargs)
