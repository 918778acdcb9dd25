"""The ``vot`` command line: ``vot tasks``, ``vot data``, ``vot bench``."""
from __future__ import annotations

import argparse
import sys


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes must be integers separated by commas, got {text!r}") from None
    if not sizes:
        raise argparse.ArgumentTypeError("give at least one size")
    return sizes


def _cmd_tasks(args) -> int:
    import tasks

    width = max(len(name) for name in tasks.names())
    for name in tasks.names():
        task = tasks.get(name)
        sizes = f"sizes {task.min_size}-{task.max_size}, benchmark {','.join(map(str, task.in_distribution))}"
        sizes += f" (ood {','.join(map(str, task.out_of_distribution))})"
        print(f"{name:<{width}}  {task.description}  [{sizes}]")
    return 0


def _cmd_data(args) -> int:
    from vot.data import write_problems

    path = write_problems(args.task, args.split, args.size, args.count, args.seed, args.out)
    print(f"wrote {path}")
    return 0


def _cmd_bench(args) -> int:
    from vot.bench import BenchConfig, run_bench

    config = BenchConfig(task=args.task, policy=args.policy, sizes=args.size, count=args.count, seed=args.seed,
                         split=args.split, out=args.out)
    run_bench(config)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vot", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("tasks", help="list the registered tasks")
    p.set_defaults(run=_cmd_tasks)

    p = commands.add_parser("data", help="write problems as JSONL plus one PNG per problem image")
    p.add_argument("task")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--size", type=_sizes, required=True, help="side length(s), e.g. 5 or 3,4,5,6")
    p.add_argument("--count", type=int, required=True, help="problems per size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(run=_cmd_data)

    p = commands.add_parser("bench", help="evaluate a policy on a task's test problems")
    p.add_argument("task")
    p.add_argument("--policy", default="gold", help="reference policy: gold, random_option, always_a, copy_start, empty_plan")
    p.add_argument("--size", type=_sizes, default=None, help="sizes (default: the task's benchmark sizes)")
    p.add_argument("--count", type=int, default=50, help="problems per size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--out", default=None, help="run directory (default runs/<task>-<policy>-seed<seed>)")
    p.set_defaults(run=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (KeyError, ValueError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"vot {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
