"""The ``vot`` command line: ``vot tasks``, ``data``, ``bench``, ``train`` (`vot.cli_train`), ``bundle``, ``eval``, ``show``."""
from __future__ import annotations

import argparse
import sys

from vot.bundle import ANSWER_SOURCES
from vot.cli_train import add_improve_parsers, add_train_parser


def _integers(what: str):
    """An argparse type: comma-separated positive integers, the error naming ``what`` they are."""

    def parse(text: str) -> list[int]:
        try:
            values = [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be integers separated by commas, got {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError(f"give at least one of the {what}")
        if any(v < 1 for v in values):
            raise argparse.ArgumentTypeError(f"{what} must be positive, got {text!r}")
        return values

    return parse


_sizes = _integers("sizes")


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad argument reported on one line (usage stays behind ``--help``)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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


def _settings(text: str) -> dict:
    settings = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"settings are key=value pairs, got {item!r}")
        if value.lower() in ("true", "false"):
            settings[key] = value.lower() == "true"
            continue
        try:
            settings[key] = int(value)
        except ValueError:
            try:
                settings[key] = float(value)
            except ValueError:
                settings[key] = value
    return settings


def _cmd_bench(args) -> int:
    from vot.bench import BenchConfig, run_bench

    config = BenchConfig(
        task=args.task, policy=args.policy, sketcher=args.sketcher, error_rate=args.error_rate,
        strategies=[s for s in args.strategy.split(",") if s], verifier=args.verifier, n=args.n, settings=args.set,
        sizes=args.size, count=args.count, seed=args.seed, max_steps=args.max_steps, sketch_steps=args.sketch_steps,
        answer=args.answer, device=args.device,
        batch=args.batch, out=args.out, resume=args.resume,
    )
    run_bench(config)
    return 0


def _cmd_bundle(args) -> int:
    import json
    from pathlib import Path

    from vot.bundle import make_bundle
    from vot.lm.card import write_card

    out = make_bundle(args.policy_dir, args.out, sketcher=args.sketcher, sketch_steps=args.sketch_steps,
                      max_steps=args.max_steps, answer=args.answer)
    table = json.loads(Path(args.table).read_text()) if args.table else None
    print(f"wrote the bundle {out} and its card {write_card(out, table)}")
    return 0


def _cmd_eval(args) -> int:
    if args.what != "sketcher":
        raise ValueError(f"vot eval {args.what}: not available (only 'sketcher')")
    import json

    from imagegen import load_sketcher
    from imagegen.evaluate import fidelity_table, format_fidelity

    from pathlib import Path

    sketcher = load_sketcher(args.sketcher)
    trained_on = Path(sketcher.name_or_path, "train_config.json")
    names = args.task.split(",") if args.task else [
        json.loads(trained_on.read_text())["environment"] if trained_on.is_file() else args.sketcher]
    tables = {}
    for name in names:
        tables[name] = fidelity_table(sketcher, name, args.size, args.steps, args.count, args.seed)
        print(f"{name}:\n{format_fidelity(tables[name])}")
    if args.out:
        from dataclasses import asdict

        with open(args.out, "w") as handle:
            json.dump({name: [asdict(r) for r in rows] for name, rows in tables.items()}, handle, indent=2)
        print(f"wrote {args.out}")
    if args.card:
        import datetime
        import shlex

        from imagegen.card import write_model_card

        command = "vot " + " ".join(shlex.quote(a) for a in sys.argv[1:] if a != "--card")
        path = write_model_card(sketcher.name_or_path, tables, command, datetime.date.today().isoformat())
        print(f"wrote {path}")
    return 0


def _cmd_show(args) -> int:
    from vot.show import show_run

    print(show_run(args.run_dir, args.problem, args.strategy))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vot", description=__doc__)
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

    p = commands.add_parser("bench", help="run test-time strategies on a task's test problems")
    p.add_argument("task")
    p.add_argument("--policy", default="default",
                   help="policy: default (the task's shipped bundle), a bundle or policy directory, or simulated (reference)")
    p.add_argument("--sketcher", default="default",
                   help="sketcher: default (the bundle's, else the shipped diffusion sketcher), oracle or blank (reference), "
                        "or a SketchPipeline directory")
    p.add_argument("--sketch-steps", type=int, default=None,
                   help="denoising steps per sketch (default: the bundle's, else the sketcher's)")
    p.add_argument("--error-rate", type=float, default=0.3, help="chain error rate of the simulated policy")
    p.add_argument("--strategy", default="greedy,best_of_n,self_consistency,refine,compute_optimal",
                   help="comma-separated: greedy, best_of_n, weighted_best_of_n, self_consistency, beam, dvts, refine, adaptive, "
                        "sketch_search, compute_optimal")
    p.add_argument("--verifier", default="consistency", help="selection verifier: consistency, procedure (consistency, and moves must follow the "
                        "rounds the sketches drew), confidence or learned")
    p.add_argument("--n", type=_integers("chains per problem (--n)"), default=[4], help="chains per problem, e.g. 1,4,16 (sampling strategies: the largest, subsampled)")
    p.add_argument("--set", type=_settings, default={}, help="strategy settings, e.g. width=4,rounds=2,sketch_candidates=4; "
                        "strategy.key=value sets one strategy only (compute_optimal.budget=3)")
    p.add_argument("--size", type=_sizes, default=None, help="sizes (default: the task's benchmark sizes)")
    p.add_argument("--count", type=int, default=10, help="problems per size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=None,
                   help="thoughts per chain (default: the bundle's, 64, raised to cover the longest stated action sequence)")
    p.add_argument("--answer", choices=ANSWER_SOURCES, default=None,
                   help="a planning chain's answer: what its answer thought writes, or the plan its thoughts walked "
                        "(VPRL's reading of the trajectory); default: the bundle's")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--batch", type=int, default=32, help="problems advanced together (and flushed together)")
    p.add_argument("--out", default=None, help="run directory (default runs/<task>-<policy>-<sketcher>-seed<seed>)")
    p.add_argument("--resume", action="store_true", help="continue a killed run in --out, skipping finished problems")
    p.set_defaults(run=_cmd_bench)

    add_train_parser(commands)
    add_improve_parsers(commands)

    p = commands.add_parser("bundle", help="package a trained policy: vot bundle POLICY_DIR --out DIR")
    p.add_argument("policy_dir", help="a directory written by vot train policy")
    p.add_argument("--out", required=True, help="the new bundle directory")
    p.add_argument("--sketcher", default="default", help="default (the shipped sketcher), oracle, or a SketchPipeline directory")
    p.add_argument("--sketch-steps", type=int, default=None)
    p.add_argument("--max-steps", type=int, default=None,
                   help="thoughts per chain the bundle allows (default 64; a dead-end-filling maze chain needs more)")
    p.add_argument("--answer", choices=ANSWER_SOURCES, default="written",
                   help="a planning chain's answer: what its answer thought writes, or the plan its thoughts walked")
    p.add_argument("--table", default=None, help="JSON from benchmarks/policy_table.py, for the model card")
    p.set_defaults(run=_cmd_bundle)

    p = commands.add_parser("eval", help="measure a model: vot eval sketcher maze (sketch fidelity by rollouts)")
    p.add_argument("what", choices=["sketcher"])
    p.add_argument("sketcher", help="a shipped default (maze, frozenlake, minibehavior) or a SketchPipeline directory")
    p.add_argument("--task", default=None,
                   help="comma-separated environments (maze: its navigation plans) or MCQ tasks (maze-mcq: the stated "
                        "action sequences a reasoning chain sketches); default: the sketcher's environment")
    p.add_argument("--size", type=_sizes, default=[3, 4, 5, 6, 7, 8])
    p.add_argument("--steps", type=_integers("denoising steps"), default=[1, 2, 4, 10, 20], help="denoising steps to compare")
    p.add_argument("--count", type=int, default=50, help="rollouts per size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="also write the table as JSON")
    p.add_argument("--card", action="store_true", help="write README.md + fidelity.json beside the sketcher's weights")
    p.set_defaults(run=_cmd_eval)

    p = commands.add_parser("show", help="print a chain of a run directory in the terminal")
    p.add_argument("run_dir")
    p.add_argument("--problem", default=None, help="problem id (default: the first problem)")
    p.add_argument("--strategy", default=None, help="strategy@N group to show (default: all)")
    p.set_defaults(run=_cmd_show)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # a bad argument (already reported on one line) or --help
        return int(stop.code or 0)
    try:
        return args.run(args)
    except (KeyError, ValueError, FileNotFoundError, FileExistsError, NotADirectoryError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"vot {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
