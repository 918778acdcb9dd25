"""Training data for the sketcher: (previous render, thought, next render) transitions.

Transitions come from the gold visual traces of an environment's tasks (MCQ and navigation share a
sketcher), on train-split problems only, plus random single actions from states along those traces
(valid or not: a wall bump must leave the sketch unchanged), so the sketcher also imagines the
mistakes a policy makes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import tasks
from tasks.parsing import action_sentence
from tasks.splits import generate_split

ENVIRONMENTS = {
    "maze": ("maze-mcq-v0", "maze-nav-v0"),
    "frozenlake": ("frozenlake-mcq-v0", "frozenlake-nav-v0"),
    "minibehavior": ("minibehavior-mcq-v0", "minibehavior-nav-v0"),
    "maze-fill": ("maze-nav-v1",),  # moves plus dead-end filling (tasks.maze_fill)
    "frozenlake-wave": ("frozenlake-nav-v1",),  # moves plus the distance wave from the goal (tasks.frozenlake_wave)
    "minibehavior-wave": ("minibehavior-nav-v1",),  # moves, pick up, drop plus the two-layer wave (tasks.minibehavior_wave)
}  # the tasks whose transitions train each sketcher (kept as trained, so its command reproduces); the last is the navigation task
ALSO_SKETCHED = {"maze-mcq-v1": "maze", "frozenlake-mcq-v1": "frozenlake", "minibehavior-mcq-v1": "minibehavior"}


def environment_of(name: str) -> str:
    """'maze', 'maze-mcq-v0', 'maze-nav' ... -> 'maze'."""
    if name in ENVIRONMENTS:
        return name
    task_id = tasks.get(name).id
    for environment, ids in ENVIRONMENTS.items():
        if task_id in ids:
            return environment
    if task_id in ALSO_SKETCHED:  # the same worlds, wider action sequences (tasks.v1)
        return ALSO_SKETCHED[task_id]
    raise ValueError(f"no sketcher environment for {name!r}; expected one of {sorted(ENVIRONMENTS)} or their task ids")


def training_sizes(environment: str) -> tuple[int, ...]:
    return tasks.get(ENVIRONMENTS[environment][0]).in_distribution


@dataclass
class Transitions:
    """Transitions of one image size: uint8 arrays (N, H, W, 3) and N thoughts."""

    prev: np.ndarray
    next: np.ndarray
    thoughts: list[str]

    def __len__(self) -> int:
        return len(self.thoughts)


def build_transitions(environment: str, sizes, problems_per_size: int, seed: int,
                      random_action_rate: float = 0.3) -> dict[int, Transitions]:
    """size -> Transitions from ``problems_per_size`` train problems per task and size."""
    rng = np.random.default_rng([seed, 7])
    out = {}
    for size in sizes:
        prev, nxt, thoughts = [], [], []
        for task_id in ENVIRONMENTS[environment]:
            task = tasks.get(task_id)
            for problem in generate_split(task, "train", size, problems_per_size, seed):
                state = task.initial_state(problem)
                image = np.asarray(task.render(state))
                for step in task.trace(problem, "visual"):
                    if step.action is None:
                        continue
                    if rng.random() < random_action_rate:
                        action = task.actions[int(rng.integers(len(task.actions)))]
                        prev.append(image)
                        nxt.append(np.asarray(task.render(task.step(state, action))))
                        thoughts.append(action_sentence(action))
                    following = np.asarray(task.render(step.state))
                    prev.append(image)
                    nxt.append(following)
                    thoughts.append(step.thought)
                    state, image = step.state, following
        out[size] = Transitions(np.stack(prev), np.stack(nxt), thoughts)
    return out


def merge_transitions(parts) -> dict[int, Transitions]:
    """Several size -> Transitions dicts as one (same-size arrays concatenated, in order)."""
    out: dict[int, Transitions] = {}
    for part in parts:
        for size, t in part.items():
            have = out.get(size)
            out[size] = t if have is None else Transitions(np.concatenate([have.prev, t.prev]),
                                                          np.concatenate([have.next, t.next]), have.thoughts + t.thoughts)
    return out


def save_transitions(path, by_size: dict[int, Transitions]) -> None:
    """Write transitions (e.g. the verified steps of self-improvement chains) as one ``.npz``."""
    arrays = {}
    for size, t in by_size.items():
        arrays |= {f"prev_{size}": t.prev, f"next_{size}": t.next, f"thoughts_{size}": np.array(t.thoughts, dtype=str)}
    np.savez_compressed(path, **arrays)


def load_transitions(path) -> dict[int, Transitions]:
    """What `save_transitions` wrote."""
    with np.load(path, allow_pickle=False) as data:
        sizes = sorted(int(key.split("_", 1)[1]) for key in data.files if key.startswith("prev_"))
        return {size: Transitions(data[f"prev_{size}"], data[f"next_{size}"], [str(t) for t in data[f"thoughts_{size}"]])
                for size in sizes}


def navigation_task(environment: str) -> str:
    """The id of the environment's navigation task (whose gold plans its rollouts are scored on)."""
    return ENVIRONMENTS[environment][-1]


def thought_corpus(environment: str) -> list[str]:
    """Every thought the sketcher may see: one sentence per action of the environment, plus the
    other thoughts its tasks' visual chains write (``Task.sketch_thoughts``)."""
    members = [tasks.get(task_id) for task_id in ENVIRONMENTS[environment]]
    actions = {a for task in members for a in task.actions}
    extra = sorted({t for task in members for t in task.sketch_thoughts})
    return [action_sentence(a) for a in sorted(actions)] + extra
