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


def chain_task(problem: Problem, chain: Chain) -> str:
    """The task whose rules a chain's steps follow: the chain's own (another version of the
    problem's task, as `vot.reasoner.Reasoner` records it), else the problem's."""
    if chain.task != problem.task and tasks.registry.family(chain.task) == tasks.registry.family(problem.task):
        return chain.task
    return problem.task


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

    def read(self, task, sketch):
        """The state ``task.read`` sees in ``sketch`` (``None``: unreadable), cached per image object
        (a search re-scores prefixes; chains of one problem share their sketch images)."""
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
        return [1.0 if reason is None else 0.0 for reason in self.step_checks(problem, chain)]

    def step_checks(self, problem: Problem, chain: Chain) -> list[str | None]:
        """Per step, ``None`` when it is right, else the rule it breaks in words (what the viewer and
        the report show beside a rejected step). `step_scores` is 0.0 exactly where this is not None."""
        task = tasks.get(chain_task(problem, chain))  # the version the chain was imagined under
        state = task.initial_state(problem)  # what the input image shows
        reasons, position = [], 0
        for step in chain.steps:
            if step.is_answer:
                reasons.append(self._answer_check(task, problem, state, chain.answer if chain.answered_walked else step.thought,
                                                  chain))
                continue
            if task.is_sketch_thought(step.thought):  # a visual thought that is not a move (a dead-end fill)
                reason, expected = None, task.imagine(state, step.thought)
            else:
                reason, expected = self._move_check(task, problem, state, step.thought, position)
                position += 1
            if step.sketch is not None:
                seen = self.read(task, step.sketch)
                if reason is None and seen != expected:
                    reason = "the sketch is unreadable" if seen is None else _differs(task, seen, expected)
                state = seen if seen is not None else expected
            else:
                state = expected
            reasons.append(reason)
        return reasons

    @staticmethod
    def _move_check(task, problem, state, thought, position):
        """(why the move ``thought`` breaks a rule, or None; the state the rules give after it)."""
        actions = parse_actions(thought, task.actions) or []
        reason = None
        if len(actions) != 1:
            reason = "the thought names no action" if not actions else f"the thought names {len(actions)} actions, not one"
        elif task.kind == "mcq" and position >= len(problem.actions):
            reason = f"a step beyond the {len(problem.actions)} stated actions"
        elif task.kind == "mcq" and actions[0] != problem.actions[position]:
            reason = f"the thought says {actions[0]!r}; the problem states {problem.actions[position]!r} as action {position + 1}"
        elif task.kind != "mcq" and not task.is_valid(state, actions[0]):
            reason = f"{actions[0]!r} is not a legal move from the state before it"
        return reason, task.step(state, actions[0]) if reason is None else state

    def _answer_check(self, task, problem, state, text, chain) -> str | None:
        parsed = task.parse_answer(text)
        if parsed is None:
            return "the answer does not parse"
        if task.kind == "mcq":
            taken = sum(not s.is_answer for s in chain.steps)
            if len(problem.actions) != taken:
                return f"the chain took {taken} steps; the problem states {len(problem.actions)} actions"
            shown = task.answer_for(state)
            return None if shown == parsed else f"the answer is {parsed}; the last sketch shows {shown}"
        if list(parsed) != task.walked_plan([s.thought for s in chain.steps if not s.is_answer]):
            return "the answer's plan differs from the moves the thoughts made"
        return None if task.is_goal(problem, state) else "the last sketch is not at the goal"


class ProcedureVerifier(ConsistencyVerifier):
    """`ConsistencyVerifier`, and a move must also be the one the chain's own rule reads off the
    rounds its sketches drew (`tasks.formats.SketchRounds.drawn_move`: a wave's descent). It
    catches a legal move that leaves the drawn wave, which the consistency check passes until the
    plan later runs into a wall (most failed room plans). It reads only the sketches, never the gold
    plan; on a task without such a rule it is the consistency verifier."""

    label = "procedure"

    def _move_check(self, task, problem, state, thought, position):
        reason, after = super()._move_check(task, problem, state, thought, position)
        drawn = task.drawn_move(state) if reason is None and hasattr(task, "drawn_move") else None
        action = (parse_actions(thought, task.actions) or [None])[0]
        if drawn is not None and action != drawn:
            reason = f"the drawn rounds show {drawn!r}; the thought says {action!r}"
        return reason, after  # a legal move still moves: its sketch is checked against the move it made


def _differs(task, seen, expected) -> str:
    """Why a readable sketch is wrong, in words (the task's ``describe`` where it has one)."""
    try:
        shown, ruled = task.describe(seen), task.describe(expected)
    except NotImplementedError:
        shown, ruled = repr(seen), repr(expected)
    if shown == ruled:
        return f"the sketch reads as '{shown}' but its other marks differ from the state the rules give"
    return f"the sketch reads as '{shown}'; the rules give '{ruled}'"


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
             "procedure": ProcedureVerifier,
             "learned": learned, "oracle": OracleVerifier}


def get_verifier(name: str, **kwargs) -> Verifier:
    """A verifier by label; ``kwargs`` go to its constructor (``model_dir=`` for ``learned``)."""
    if name not in VERIFIERS:
        raise ValueError(f"unknown verifier {name!r}; available: {', '.join(VERIFIERS)}")
    return VERIFIERS[name](**kwargs)
