"""Spatial reasoning tasks (MVoT MAZE / FROZENLAKE / MINIBEHAVIOR and planning variants).

Pure numpy + pillow (+ gymnasium/minigrid for parity and the environment id); never imports torch.

    >>> import numpy as np, tasks
    >>> task = tasks.get("maze-mcq-v0")
    >>> problem = task.generate(np.random.default_rng(0), size=5)
    >>> task.check(problem, f"The answer is {problem.answer}.").correct
    True
"""
from tasks.core import InvalidLayout, Problem, Score, Task, TraceStep
from tasks.frozenlake import FrozenLakeMCQ, FrozenLakeNav, validate_desc
from tasks.grid import perturb
from tasks.maze import (
    MazeLayout, MazeMCQ, MazeNav, maze_from_ascii, maze_from_connection_list, maze_from_mvot_info, maze_to_ascii,
    maze_to_connection_list,
)
from tasks.minibehavior import MiniBehaviorMCQ, MiniBehaviorNav
from tasks.metrics import Rate, sketch_fidelity, summarize_scores, wilson_interval
from tasks.registry import get, names, register

from tasks.frozenlake_wave import FrozenLakeNavWave
from tasks.maze_fill import MazeNavFill
from tasks.minibehavior_wave import MiniBehaviorNavWave
from tasks.v1 import FrozenLakeMCQv1, MazeMCQv1, MiniBehaviorMCQv1

for _task in (MazeMCQ(), MazeNav(), FrozenLakeMCQ(), FrozenLakeNav(), MiniBehaviorMCQ(), MiniBehaviorNav(),
              MazeMCQv1(), FrozenLakeMCQv1(), MiniBehaviorMCQv1(), MazeNavFill(), FrozenLakeNavWave(),
              MiniBehaviorNavWave()):
    register(_task)

try:  # the gymnasium env id; minigrid is imported only when the env is made
    import gymnasium as _gym
except ImportError:  # pragma: no cover
    _gym = None
if _gym is not None and "vot/MiniBehavior-InstallingAPrinter-v0" not in _gym.registry:
    _gym.register("vot/MiniBehavior-InstallingAPrinter-v0", entry_point="tasks.minibehavior_env:InstallingAPrinterEnv")

__all__ = [
    "InvalidLayout", "Problem", "Score", "Task", "TraceStep", "Rate", "get", "names", "register", "perturb",
    "sketch_fidelity", "summarize_scores", "wilson_interval", "maze_from_ascii", "maze_to_ascii",
    "maze_from_connection_list", "maze_from_mvot_info", "maze_to_connection_list", "MazeLayout", "validate_desc",
]
