"""The task registry: ``tasks.get("maze-mcq-v0")``; short names ("maze", "maze-mcq", "maze-nav") resolve
to the family's current version (`CURRENT`; v0 where a family has no other)."""
from __future__ import annotations

from tasks.core import Task

_TASKS: dict[str, Task] = {}
ALIASES = {"maze": "maze-mcq", "frozenlake": "frozenlake-mcq", "minibehavior": "minibehavior-mcq"}
# The version a family's short name means: v1 since its sequences cover the published formats (issue 15).
# v0 stays registered, and reproducible by its full id.
CURRENT = {"maze-mcq": "maze-mcq-v1", "frozenlake-mcq": "frozenlake-mcq-v1", "minibehavior-mcq": "minibehavior-mcq-v1"}


def register(task: Task) -> Task:
    """Add a task instance under its ``id``; re-registering an id replaces it."""
    if not getattr(task, "id", None):
        raise ValueError("a task needs an id like 'name-v0' to be registered")
    _TASKS[task.id] = task
    return task


def family(task_id: str) -> str:
    """A task id without its version (``frozenlake-mcq-v1`` -> ``frozenlake-mcq``): versions of one
    family share worlds, prompts and answers, so a policy of one version can answer another's."""
    return task_id.rsplit("-v", 1)[0]


def version(task_id: str) -> int:
    """The version number of a task id (``maze-mcq-v1`` -> 1; 0 when it has none)."""
    head, sep, tail = task_id.rpartition("-v")
    return int(tail) if sep and tail.isdigit() else 0


def names() -> list[str]:
    return sorted(_TASKS)


def get(name: str) -> Task:
    """The registered task named ``name``: a full id, or a family or short alias meaning the family's
    current version (``maze`` and ``maze-mcq`` -> ``maze-mcq-v1``, ``maze-nav`` -> ``maze-nav-v0``)."""
    if isinstance(name, Task):
        return name
    name_family = ALIASES.get(name, name)
    for candidate in (name, CURRENT.get(name_family), f"{name_family}-v0"):
        if candidate in _TASKS:
            return _TASKS[candidate]
    raise KeyError(f"unknown task {name!r}; registered tasks: {', '.join(names())}")
