"""Trivial baselines. Each maps a problem to an answer text; they must score at chance."""
from __future__ import annotations

import numpy as np

from tasks.core import Problem
from tasks.registry import get


def random_option(problem: Problem, rng: np.random.Generator) -> str:
    """A uniformly random option letter (MCQ)."""
    letters = sorted(problem.options)
    return f"The answer is {letters[int(rng.integers(len(letters)))]}."


def always_a(problem: Problem) -> str:
    return "The answer is A."


def copy_start(problem: Problem) -> str:
    """Answer as if the agent never moved. MCQ: the option describing the start state (for a maze,
    where the start is never a candidate, the candidate nearest to it). Nav: the empty plan."""
    task = get(problem.task)
    if task.kind == "nav":
        return empty_plan(problem)
    state = task.initial_state(problem)
    answer = task.answer_for(state)
    if answer is None:  # maze: nearest candidate by Manhattan distance, ties by letter
        (r, c) = state.agent
        answer = min(state.marks, key=lambda m: (abs(m[1][0] - r) + abs(m[1][1] - c), m[0]))[0]
    return f"The answer is {answer}."


def empty_plan(problem: Problem) -> str:
    return "The answer is: (no moves)."


MCQ_BASELINES = ("random_option", "always_a", "copy_start")
NAV_BASELINES = ("empty_plan", "copy_start")
