"""Gymnasium environment ``vot/MiniBehavior-InstallingAPrinter-v0`` on minigrid 3.

The dynamics are ``tasks.minibehavior``'s (absolute moves, pick up, drop; see its docstring); minigrid
supplies the grid objects, the observation encoding and the rendering. Actions are Discrete(6) in the
order of ``tasks.minibehavior.ACTIONS``: 0 up, 1 down, 2 left, 3 right, 4 pick up, 5 drop. Reward 1
and ``terminated`` when the printer is installed. Observations are fully observable: ``image`` is
minigrid's (width, height, 3) grid encoding with the agent drawn in, ``direction`` the last move's
minigrid direction (0 right, 1 down, 2 left, 3 up; 3 at reset), ``mission`` a fixed string. Grid
objects: the table is yellow boxes, the printer a blue ball (green once on the table).
``info["state"]`` is the task state as JSON. ``reset(options={"layout": {...}})`` loads a layout.
"""
from __future__ import annotations

import numpy as np
from gymnasium import spaces
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX
from minigrid.core.grid import Grid
from minigrid.core.mission import MissionSpace
from minigrid.core.world_object import Ball, Box
from minigrid.minigrid_env import MiniGridEnv

from tasks.minibehavior import ACTIONS, MiniBehaviorNav, RoomState, random_room, room_from_layout

MISSION = "install the printer on the table"
DIRECTIONS = {"right": 0, "down": 1, "left": 2, "up": 3}  # minigrid's agent_dir values


def _mission() -> str:
    return MISSION


class InstallingAPrinterEnv(MiniGridEnv):
    def __init__(self, size: int = 7, max_steps: int | None = None, render_mode: str | None = None, **kwargs):
        self.world = MiniBehaviorNav()
        self.world.check_size(size)
        self.size = size
        self.state: RoomState | None = None
        self._next_layout: dict | None = None
        super().__init__(
            mission_space=MissionSpace(mission_func=_mission), grid_size=size, max_steps=max_steps or 4 * size * size,
            see_through_walls=True, render_mode=render_mode, highlight=False, **kwargs,
        )
        self.action_space = spaces.Discrete(len(ACTIONS))
        self.observation_space = spaces.Dict({
            "image": spaces.Box(0, 255, (size, size, 3), dtype=np.uint8),
            "direction": spaces.Discrete(4),
            "mission": self.observation_space["mission"],
        })

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._next_layout = (options or {}).get("layout")
        obs, _ = super().reset(seed=seed)
        return obs, {"state": self.world.state_to_json(self.state)}

    def _gen_grid(self, width: int, height: int) -> None:
        if self._next_layout is not None:
            self.state = room_from_layout(self._next_layout)
        else:  # our generator, seeded from gymnasium's np_random
            self.state = random_room(np.random.default_rng(int(self.np_random.integers(2**63 - 1))), self.size)
        self.agent_dir = DIRECTIONS["up"]
        self._sync()

    def _sync(self) -> None:
        """Mirror ``self.state`` into minigrid's grid (x = column, y = row)."""
        state = self.state
        self.grid = Grid(state.size, state.size)
        self.grid.wall_rect(0, 0, state.size, state.size)
        for r, c in state.table:
            self.grid.set(c, r, Box("yellow"))
        self.carrying = Ball("blue") if state.carrying else None
        if state.printer is not None:
            self.put_obj(Ball("green" if state.installed else "blue"), state.printer[1], state.printer[0])
        self.agent_pos = (state.agent[1], state.agent[0])

    def gen_obs(self) -> dict:
        image = self.grid.encode()  # (width, height, 3)
        x, y = self.agent_pos
        image[x][y] = np.array([OBJECT_TO_IDX["agent"], COLOR_TO_IDX["red"], self.agent_dir])
        return {"image": image, "direction": self.agent_dir, "mission": self.mission}

    def step(self, action):
        self.step_count += 1
        name = ACTIONS[int(action)]
        valid = self.world.is_valid(self.state, name)
        self.state = self.world.step(self.state, name)
        if name in DIRECTIONS:
            self.agent_dir = DIRECTIONS[name]
        self._sync()
        terminated = self.state.installed
        truncated = not terminated and self.step_count >= self.max_steps
        if self.render_mode == "human":
            self.render()
        info = {"action": name, "valid": valid, "state": self.world.state_to_json(self.state)}
        return self.gen_obs(), 1.0 if terminated else 0.0, terminated, truncated, info
