"""Teacher-forced decisions of a maze navigation policy: does it read the walls, and does it know
when to stop filling?

Each val problem's gold visual chain is fed whole (gold sketches); at every thought the policy's
first choice is compared with the gold one:

- moves (maze-nav-v0 and v1): the direction word, grouped by the agent cell's open sides and by how
  many of them lead to a cell that is neither walked on nor filled (v1 leaves exactly one);
- fill rounds (maze-nav-v1): "Fill" against "Go" for the first word of each thought, counted from
  the last round (the one that fills nothing; the first move follows it).

    python benchmarks/nav_decisions.py checkpoints/policy-maze-nav-v1-fill [--count 12] [--sizes 3,4,5,6]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tasks  # noqa: E402
from tasks import grid  # noqa: E402
from tasks.maze_fill import filled_cells  # noqa: E402
from tasks.splits import generate_split  # noqa: E402
from vot.lm.model import PolicyModel  # noqa: E402
from vot.lm.sequences import build_example  # noqa: E402


def decisions(model: PolicyModel, task, sizes, count: int) -> dict[str, list[int]]:
    """{decision kind: [right, total]} over ``count`` val problems per size."""
    vocab = model.tokenizer.tokenizer
    directions = {vocab.token_to_id(word): word for word in task.actions}
    fill, go = vocab.token_to_id("Fill"), vocab.token_to_id("Go")
    stats: dict[str, list[int]] = {}

    def count_one(key, right):
        cell = stats.setdefault(key, [0, 0])
        cell[0] += int(right)
        cell[1] += 1

    for size in sizes:
        for problem in generate_split(task, "val", size, count):
            example = build_example(problem, "vot", model.tokenizer, model.spec.shape.patch)
            ids = torch.tensor([example.ids])  # (1, L)
            segments = torch.tensor([model.tokenizer.segments(example.ids)])
            pixels = torch.from_numpy(np.stack(example.images)).permute(0, 3, 1, 2).float() / 127.5 - 1  # (I, 3, H, W)
            with torch.no_grad():
                logits = model.decoder(inputs_embeds=model.embed(ids, model.encoder(pixels), segments)).logits[0]  # (L, V)
            trace = task.trace(problem)
            before = [task.initial_state(problem)] + [s.state for s in trace[:-1]]
            move_states = iter(state for state, s in zip(before, trace) if s.action in task.actions)
            thinking = [i for i in range(1, len(example.labels)) if not example.answer[i]]
            firsts = [i for i in thinking if example.labels[i] in (fill, go)]
            rounds = sum(1 for i in firsts if example.labels[i] == fill)
            for k, i in enumerate(firsts):
                if rounds and fill is not None:
                    back = rounds - 1 - k
                    key = ("the last fill round (fills nothing)" if back == 0 else "the round before the last" if back == 1
                           else "earlier fill rounds") if k < rounds else (
                        "first move (after the last round)" if k == rounds else "later moves")
                    guess = fill if logits[i - 1, fill] > logits[i - 1, go] else go
                    count_one("Fill or Go: " + key, guess == example.labels[i])
            for i in thinking:
                if example.labels[i] in directions and example.labels[i - 1] == go:
                    state = next(move_states)
                    open_sides = [d for d in task.actions if state.layout.is_open(state.agent, d)]
                    free = [d for d in open_sides if grid.move(state.agent, d) not in state.visited | filled_cells(state)]
                    guess = max(directions, key=lambda t: float(logits[i - 1, t]))
                    count_one(f"direction: {len(open_sides)} open sides, {len(free)} free", guess == example.labels[i])
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy", help="a directory written by vot train policy (maze-nav-v0 or v1)")
    parser.add_argument("--count", type=int, default=12, help="val problems per size")
    parser.add_argument("--sizes", default="3,4,5,6")
    args = parser.parse_args()
    model = PolicyModel.from_pretrained(args.policy).eval()
    task = tasks.get(model.spec.task)
    if not task.id.startswith("maze-nav"):
        sys.exit(f"nav_decisions: the policy's task is {task.id}, not a maze navigation task")
    stats = decisions(model, task, [int(s) for s in args.sizes.split(",")], args.count)
    print(f"{args.policy} ({task.id}), teacher-forced, {args.count} val problems per size {args.sizes}")
    for key in sorted(stats):
        right, total = stats[key]
        print(f"  {key}: {right}/{total} ({100 * right / total:.1f}%)")


if __name__ == "__main__":
    main()
