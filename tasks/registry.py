"""The task registry: ``tasks.get("maze-mcq-v0")``; short names ("maze", "maze-nav") resolve too."""
from __future__ import annotations

from tasks.core import Task

_TASKS: dict[str, Task] = {}
ALIASES = {"maze": "maze-mcq-v0", "frozenlake": "frozenlake-mcq-v0", "minibehavior": "minibehavior-mcq-v0"}


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


def names() -> list[str]:
    return sorted(_TASKS)


def get(name: str) -> Task:
    """The registered task named ``name`` (full id, id without ``-v0``, or a short alias)."""
    if isinstance(name, Task):
        return name
    for candidate in (name, ALIASES.get(name), f"{name}-v0"):
        if candidate in _TASKS:
            return _TASKS[candidate]
    raise KeyError(f"unknown task {name!r}; registered tasks: {', '.join(names())}")
