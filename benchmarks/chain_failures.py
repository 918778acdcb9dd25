"""Why did greedy chains fail? Reads a `vot bench` run directory's sketches back with `Task.read`.

    python benchmarks/chain_failures.py runs/policy_table/maze-mcq-v0-vot-default-greedy [--strategy greedy]

For every chain it replays the chain's own actions in the simulator and compares each saved sketch,
read back, with the simulated state. A sketch is *misdrawn* when the two differ. A *transition error*
is a misdrawn sketch whose previous sketch read back right (the first error of a rollout; later
sketches inherit it). A thought is *wrong* when its action is not the one the problem states at that
position (MCQ) or is illegal. Each failed chain lands in one class:

- ``sketch only``: a misdrawn sketch and every thought right (the sketcher's fault);
- ``thought only``: a wrong thought and every sketch right (the policy's copy step);
- ``both``; ``answer only``: everything right but the answer (the policy's reading of the last sketch).

Transition errors are also split by whether the agent moved onto or off a marked cell (a state with
``marks``, ``(name, cell)`` pairs: the maze's candidates and goal), which is where the first maze
palette failed. Prints a markdown summary per size; ``--out`` writes the counts as JSON.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

import tasks
from tasks.parsing import parse_actions
from vot.chain import Chain
from vot.run import read_run
from vot.viewer import read_back


def analyse_chain(task, problem, chain: Chain) -> dict:
    """Per-chain facts: misdrawn sketch positions, transition errors (and how many touch a mark),
    wrong thought positions, steps."""
    state = task.initial_state(problem)
    previous_ok, position = True, 0
    misdrawn, wrong_thoughts, transitions, on_marks = [], [], 0, 0
    for index, step in enumerate(chain.steps):
        if step.is_answer:
            continue
        actions = parse_actions(step.thought, task.actions) or []
        legal = len(actions) == 1 and task.is_valid(state, actions[0])
        stated = task.kind != "mcq" or (position < len(problem.actions) and actions[:1] == [problem.actions[position]])
        if not (legal and stated):
            wrong_thoughts.append(index)
        after = task.step(state, actions[0]) if len(actions) == 1 else state
        if step.sketch is not None:
            seen = read_back(task, step.sketch)
            ok = seen == after
            if not ok:
                misdrawn.append(index)
                if previous_ok:
                    transitions += 1
                    cells = {cell for _, cell in getattr(state, "marks", ())}
                    if getattr(state, "agent", None) in cells or getattr(after, "agent", None) in cells:
                        on_marks += 1
            previous_ok = ok
        state, position = after, position + 1
    return {"misdrawn": misdrawn, "wrong_thoughts": wrong_thoughts, "transition_errors": transitions,
            "transition_errors_on_marks": on_marks, "sketches": sum(s.sketch is not None for s in chain.steps)}


def failure_class(facts: dict) -> str:
    if facts["misdrawn"] and facts["wrong_thoughts"]:
        return "both"
    if facts["misdrawn"]:
        return "sketch only"
    if facts["wrong_thoughts"]:
        return "thought only"
    return "answer only"


def analyse_run(run_dir: str | Path, strategy: str = "greedy") -> dict:
    """``{size: counts}`` over a run directory's chains of ``strategy`` (`vot.run.read_run`)."""
    run = read_run(run_dir)
    pairs = [(entry, r) for entry in run.finished for r in entry.chains if r.strategy == strategy]
    if not pairs:
        raise ValueError(f"{run_dir} has no {strategy!r} chains (strategies: {sorted({r.strategy for r in run.records})})")
    by_size: dict[int, Counter] = defaultdict(Counter)
    for entry, record in pairs:
        task = tasks.get(entry.problem.task)
        facts = analyse_chain(task, entry.problem, run.sketched(record))
        counts = by_size[record.size]
        counts["chains"] += 1
        counts["correct"] += record.correct
        counts["sketches"] += facts["sketches"]
        counts["transition_errors"] += facts["transition_errors"]
        counts["transition_errors_on_marks"] += facts["transition_errors_on_marks"]
        counts["chains_with_misdrawn_sketch"] += bool(facts["misdrawn"])
        if not record.correct:
            counts[f"failed: {failure_class(facts)}"] += 1
    return {size: dict(counts) for size, counts in sorted(by_size.items())}


CLASSES = ("sketch only", "thought only", "both", "answer only")


def markdown(result: dict) -> str:
    head = ("| size | chains | correct | chains with a misdrawn sketch | transition errors / sketches "
            "(on a marked cell) | " + " | ".join(f"failed: {c}" for c in CLASSES) + " |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for size, c in result.items():
        cells = [str(size), str(c["chains"]), str(c["correct"]), str(c["chains_with_misdrawn_sketch"]),
                 f"{c['transition_errors']} / {c['sketches']} ({c['transition_errors_on_marks']})"]
        cells += [str(c.get(f"failed: {k}", 0)) for k in CLASSES]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--strategy", default="greedy")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    result = analyse_run(args.run_dir, args.strategy)
    print(markdown(result))
    if args.out:
        Path(args.out).write_text(json.dumps({"run_dir": args.run_dir, "strategy": args.strategy,
                                              "by_size": result}, indent=2))


if __name__ == "__main__":
    main()
