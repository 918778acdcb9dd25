"""Question formats shared by the grid worlds: multiple choice (MVoT) and navigation (VPRL / VoT)."""
from __future__ import annotations

import re
from typing import Sequence

from tasks.core import Problem, Score, TraceStep
from tasks.parsing import action_sentence, parse_actions, parse_option, plan_text


class MCQFormat:
    """Multiple choice: the prompt states an action sequence; the answer is an option letter."""

    kind = "mcq"

    def answer_text(self, letter: str) -> str:
        return f"The answer is {letter}."

    def parse_answer(self, text: str, options: dict[str, str] | None = None) -> str | None:
        return parse_option(text, options or self.default_options)

    def check(self, problem: Problem, text: str) -> Score:
        parsed = self.parse_answer(text, problem.options)
        return Score(correct=parsed is not None and parsed == problem.answer, parsed=parsed, parse_failed=parsed is None)

    def trace(self, problem: Problem, style: str = "visual") -> list[TraceStep]:
        _check_style(style)
        state = self.initial_state(problem)
        steps = []
        for action in problem.actions:
            state = self.step(state, action)
            steps.append(TraceStep(_thought(self, action, state, style), action, state))
        steps.append(TraceStep(self.answer_text(problem.answer), None, state))
        return steps


class NavFormat:
    """Navigation / planning: the answer is the action sequence from the start to the goal.

    Subclasses implement ``goal_distance(problem, state)`` (fewest actions to the goal, ``None`` if
    unreachable) and ``is_goal(problem, state)``."""

    kind = "nav"

    def answer_text(self, actions: Sequence[str]) -> str:
        return "The answer is: " + (plan_text(actions) if actions else "(no moves).")

    def parse_answer(self, text: str) -> list[str] | None:
        """Actions named in ``text``; ``[]`` for an explicit "no moves"; ``None`` if unparseable."""
        plan = parse_actions(text, self.actions)
        if plan is None and isinstance(text, str) and re.search(r"\bno (moves?|actions?)\b", text, re.IGNORECASE):
            return []
        return plan

    def check(self, problem: Problem, text: str) -> Score:
        plan = self.parse_answer(text)
        if plan is None:
            return Score(correct=False, parsed=None, parse_failed=True, progress=0.0, valid=False, reached=False)
        return self.score_plan(problem, plan)

    def score_plan(self, problem: Problem, plan: Sequence[str]) -> Score:
        """Exact match (valid, reaches the goal, as short as a shortest plan), progress rate (valid
        moves that each bring the goal one step closer, counted from the start, over the optimal
        length), validity (no invalid move) and whether the goal was reached."""
        state = self.initial_state(problem)
        optimal = self.goal_distance(problem, state)
        distance, progress, on_track, valid = optimal, 0, True, True
        for action in plan:
            if action not in self.actions or not self.is_valid(state, action):
                valid = False
                break
            state = self.step(state, action)
            new_distance = self.goal_distance(problem, state)
            if on_track and new_distance is not None and distance is not None and new_distance == distance - 1:
                progress += 1
            else:
                on_track = False
            distance = new_distance
        reached = valid and self.is_goal(problem, state)
        exact = reached and len(plan) == optimal
        return Score(correct=exact, parsed=list(plan), progress=progress / optimal if optimal else 1.0, valid=valid, reached=reached)

    def walked_plan(self, thoughts: Sequence[str]) -> list[str]:
        """The actions a chain's thoughts take, in order: the plan its trajectory walks (VPRL reads
        a plan off the trajectory this way). A visual thought that is no action (`is_sketch_thought`,
        a dead-end fill) takes none, nor does a thought that names none."""
        return [action for thought in thoughts if not self.is_sketch_thought(thought)
                for action in (parse_actions(thought, self.actions) or [])]

    def gold_plan(self, problem: Problem) -> list[str]:
        return parse_actions(problem.answer, self.actions) or []

    def trace(self, problem: Problem, style: str = "visual") -> list[TraceStep]:
        _check_style(style)
        plan = self.gold_plan(problem)
        state = self.initial_state(problem)
        steps = []
        for action in plan:
            state = self.step(state, action)
            steps.append(TraceStep(_thought(self, action, state, style), action, state))
        steps.append(TraceStep(self.answer_text(plan), None, state))
        return steps


class SketchRounds:
    """A planning variant whose visual chain first repeats one imagined round (``round_thought``,
    drawn by `sketch_round`) and then makes the moves, each a local decision on what the rounds
    drew (`tasks.maze_fill`, `tasks.frozenlake_wave`, `tasks.minibehavior_wave`). Mixed in before the
    task class; a subclass gives ``round_thought``, ``round_action``, ``round_word`` (what names a round
    in a thought), `sketch_round(state)` and `rounds_done(state)`, or its own `gold_rounds(state)` (the
    states after each of the gold chain's rounds)."""

    round_thought: str
    round_action: str
    round_word: str

    @property
    def sketch_thoughts(self) -> tuple[str, ...]:
        return (self.round_thought,)

    def sketch_round(self, state):
        raise NotImplementedError

    def rounds_done(self, state) -> bool:
        """Whether the gold chain stops imagining rounds at ``state`` (for the default `gold_rounds`)."""
        raise NotImplementedError

    def gold_rounds(self, state) -> list:
        """The states after each gold round: rounds until `rounds_done` (none if it already is)."""
        rounds = []
        while not self.rounds_done(state):
            state = self.sketch_round(state)
            rounds.append(state)
        return rounds

    def is_sketch_thought(self, thought: str) -> bool:
        return isinstance(thought, str) and self.round_word in thought.lower()

    def drawn_move(self, state) -> str | None:
        """The action the chain's own rule reads off the rounds drawn in ``state`` (a wave's
        descent), or None where the rule gives none (before the rounds reach the agent, or a chain
        without such a rule). The `procedure` verifier holds a chain's moves to it."""
        return None

    def imagine(self, state, thought: str):
        if self.is_sketch_thought(thought):
            return self.sketch_round(state)
        return super().imagine(state, thought)

    def step(self, state, action: str):
        if action == self.round_action:
            return self.sketch_round(state)
        return super().step(state, action)

    def plan_phases(self, plan: list[str]) -> list[list[str]]:
        """The gold plan cut where the chain imagines rounds again (each phase starts with rounds):
        one phase by default."""
        return [plan]

    def trace(self, problem: Problem, style: str = "visual") -> list[TraceStep]:
        """Visual: for each phase of the gold plan (`plan_phases`), the gold rounds, then its actions;
        then the answer. Text chain-of-thought keeps the base task's chain."""
        _check_style(style)
        if style == "text":
            return super().trace(problem, style)
        state, steps = self.initial_state(problem), []
        plan = self.gold_plan(problem)
        for phase in self.plan_phases(plan):
            steps += [TraceStep(self.round_thought, self.round_action, s) for s in self.gold_rounds(state)]
            state = steps[-1].state if steps else state
            for action in phase:
                state = self.step(state, action)
                steps.append(TraceStep(action_sentence(action), action, state))
        steps.append(TraceStep(self.answer_text(plan), None, state))
        return steps


def _check_style(style: str) -> None:
    if style not in ("visual", "text"):
        raise ValueError(f"trace style must be 'visual' or 'text', got {style!r}")


def _thought(task, action: str, state, style: str) -> str:
    sentence = action_sentence(action)
    return sentence if style == "visual" else f"{sentence} {task.describe(state)}"
