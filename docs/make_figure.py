"""Regenerate docs/tasks.png, the README's picture: one gold chain per environment, step by step.

    python docs/make_figure.py
"""
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import tasks

SCALE, PAD, STEPS = 4, 6, 6


def strip(name: str, size: int, seed: int) -> Image.Image:
    task = tasks.get(name)
    problem = task.generate(np.random.default_rng(seed), size)
    states = [task.initial_state(problem)] + [s.state for s in task.trace(problem)[:-1]]
    frames = [task.render(s) for s in states[:STEPS]]
    side = frames[0].width * SCALE
    canvas = Image.new("RGB", (len(frames) * (side + PAD) + PAD, side + 2 * PAD + 14), "white")
    draw = ImageDraw.Draw(canvas)
    thoughts = ["start"] + [s.thought for s in task.trace(problem)[: STEPS - 1]]
    for i, (frame, thought) in enumerate(zip(frames, thoughts)):
        x = PAD + i * (side + PAD)
        canvas.paste(frame.resize((side, side), Image.NEAREST), (x, PAD))
        draw.text((x, side + PAD + 2), thought, fill="black")
    return canvas


def main() -> None:
    rows = [strip("maze-mcq-v0", 5, 3), strip("frozenlake-nav-v0", 5, 1), strip("minibehavior-nav-v0", 7, 2)]
    width = max(r.width for r in rows)
    figure = Image.new("RGB", (width, sum(r.height for r in rows)), "white")
    y = 0
    for row in rows:
        figure.paste(row, (0, y))
        y += row.height
    path = Path(__file__).with_name("tasks.png")
    figure.save(path, optimize=True)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
