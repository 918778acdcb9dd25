"""``vot train policy|sketcher|verifier``: one subcommand per trainer, each with its own flags.
The runs themselves share `imagegen.trainer.TrainingRun` (output directory, checkpoints, resume,
log, progress); the flags every trainer has are added by `_common`."""
from __future__ import annotations

import argparse


def _common(p: argparse.ArgumentParser, task_help: str, out_default: str, steps_default: str) -> None:
    p.add_argument("--task", required=True, help=task_help)
    p.add_argument("--steps", type=int, default=None, help=f"optimizer steps (default: {steps_default})")
    p.add_argument("--out", default=None, help=f"output directory (default {out_default})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from the latest complete checkpoint in --out")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def add_train_parser(commands) -> None:
    """Add ``vot train`` and its three subcommands to the ``vot`` subparsers ``commands``."""
    from vot.cli import _integers
    train = commands.add_parser("train", help="train a model: vot train sketcher --task maze --preset tiny")
    which = train.add_subparsers(dest="what", required=True, metavar="{policy,sketcher,verifier}")

    p = which.add_parser("policy", help="the policy LM on gold traces: vot train policy --task maze-mcq-v1")
    _common(p, "task id (maze-mcq-v1)", "checkpoints/policy-<task>-<mode>-<preset>", "the preset's")
    p.add_argument("--preset", default="tiny", choices=["tiny", "base"])
    p.add_argument("--mode", default="vot", choices=["vot", "cot", "direct"],
                   help="reason with sketches (vot), with text coordinates (cot) or answer directly")
    p.add_argument("--export", action="store_true",
                   help="save the latest checkpoint in --out as a loadable policy (a run cut short)")
    p.add_argument("--answer-weight", type=float, default=1.0,
                   help="loss weight of the answer's tokens relative to the thoughts'")
    p.add_argument("--sketcher-share", type=float, default=0.2,
                   help="vot mode: share of training problems whose sketches come from the trained sketcher")
    p.add_argument("--canvas-share", type=float, default=0.0,
                   help="share of training problems whose images are padded by 1-2 extra patches, so the policy also "
                        "sees the larger grids of vision tokens that out-of-distribution sizes give")
    p.add_argument("--init-from", default=None,
                   help="start from a trained policy directory (tensors of the same shape, shared tokens)")
    p.add_argument("--edge-perception", action="store_true",
                   help="train the encoder to also name the colour of each cell's border lines (maze walls); "
                        "a shape option, so a warm start from a policy without it adds a fresh head")
    p.add_argument("--context-perception", action="store_true",
                   help="give each vision token its neighbouring patches (a 3x3 convolution after the stem, zero at the "
                        "start) and train it to name their colours; a shape option, fresh in a warm start")
    p.add_argument("--patch", type=int, default=None, choices=[8, 16],
                   help="pixels a side per vision token: 16 (the preset's) groups 2x2 task cells, 8 gives each cell its "
                        "own token (4x the image tokens; a maze move reads one cell's walls)")
    p.add_argument("--index-shift-share", type=float, default=0.5,
                   help="share of training examples whose index tokens <k> are renumbered <k+o> (random o), so the "
                        "high indices of long chains are trained as often as the low ones")
    p.add_argument("--position-gap", type=int, default=0,
                   help="half the training rows skip 0..G positions before each index token <k>, so chains longer than "
                        "the training ones (larger sizes) put their thoughts no further from what they read than training did")
    p.add_argument("--eval-every", type=int, default=500, help="greedy validation every this many steps")
    p.add_argument("--eval-count", type=int, default=16, help="validation problems per size")
    p.add_argument("--problems-per-size", type=int, default=None,
                   help="distinct train problems per size (default: the preset's; small sizes of frozenlake-nav have "
                        "fewer than 1,500)")
    p.add_argument("--stop-at-accuracy", type=float, default=None,
                   help="finish early once greedy validation accuracy reaches this (e.g. 1.0)")
    p.add_argument("--sizes", type=_integers("sizes"), default=None,
                   help="comma-separated training sizes (default: the task's in-distribution sizes); greedy validation "
                        "stays on the in-distribution sizes. Smaller problems make shorter, cheaper chains")
    p.set_defaults(run=_train_policy)

    p = which.add_parser("sketcher", help="the diffusion sketcher on transitions: vot train sketcher --task maze")
    _common(p, "task id or environment (maze, frozenlake, minibehavior)", "checkpoints/sketcher-<task>-<preset>",
            "the preset's")
    p.add_argument("--preset", default="tiny", choices=["tiny", "base"])
    p.add_argument("--init-from", default=None,
                   help="fine-tune a sketcher directory or shipped name of the same environment and preset")
    p.add_argument("--problems-per-size", type=int, default=1000, help="problems per size whose transitions are trained on")
    p.add_argument("--condition-noise", type=float, default=0.0,
                   help="max strength of the noise added to the previous sketch in training (per-cell colour drift "
                        "plus pixel noise, in [-1, 1] units), meant to keep long rollouts from compounding small "
                        "errors; one try at 0.2 made maze rollouts worse (BENCHMARKS.md), hence the default 0")
    p.set_defaults(run=_train_sketcher)

    p = which.add_parser("verifier", help="the learned step verifier of an MCQ task: vot train verifier --task maze")
    _common(p, "MCQ task id or short name (maze: the current version, maze-mcq-v1; maze-mcq-v0 for v0)",
            "checkpoints/verifier-<task>", "600")
    p.add_argument("--bundle", default=None, help="the bundle whose sampled chains are labelled (default: the task's shipped one)")
    p.add_argument("--chains-per-problem", type=int, default=4, help="sampled chains of the bundle per train problem")
    p.add_argument("--problems-per-size", type=int, default=25, help="train problems per size")
    p.add_argument("--sizes", type=_integers("sizes"), default=[],
                   help="comma-separated problem sizes (default: in- and out-of-distribution)")
    p.set_defaults(run=_train_verifier)


def add_improve_parsers(commands) -> None:
    """``vot improve`` (self-improvement rounds, `vot.improve`) and ``vot distill`` (`vot.distill`)."""
    from vot.cli import _integers

    p = commands.add_parser("improve", help="self-improvement without labels: vot improve --task maze --from maze --rounds 3")
    p.add_argument("--task", required=True, help="task id or short name (maze; maze-nav with --filter reward)")
    p.add_argument("--from", dest="start", required=True, help="the bundle (name or directory) or policy directory to start from")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--sizes", type=_integers("sizes"), default=[7, 8, 9, 10, 11, 12],
                   help="the sizes the rounds climb, --sizes-per-round at a time (default 7,8,9,10,11,12)")
    p.add_argument("--sizes-per-round", type=int, default=1)
    p.add_argument("--filter", default="vote",
                   help="which sampled chains to keep: vote, consistency, learned, length, reward (planning tasks: the "
                        "simulator checks the plan), or a '+' combination (vote+length); none and gold (reads the answer) "
                        "are controls")
    p.add_argument("--vote-share", type=float, default=0.75, help="vote: the majority answer's least share of the chains")
    p.add_argument("--n", type=int, default=8, help="sampled chains per problem")
    p.add_argument("--problems", type=int, default=100, help="unlabelled problems per size and round")
    p.add_argument("--steps", type=int, default=300, help="training steps per round")
    p.add_argument("--chain-share", type=float, default=0.5, help="share of training batches from kept chains (the rest: gold replay)")
    p.add_argument("--eval-count", type=int, default=25, help="test problems per size evaluated after each round")
    p.add_argument("--eval-sizes", type=_integers("sizes"), default=[], help="default: the training sizes and --sizes")
    p.add_argument("--sketcher", default="default", help="default (the shipped diffusion sketcher) or oracle")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--out", default=None, help="run directory (default runs/improve-<task>-<filter>)")
    p.add_argument("--resume", action="store_true", help="continue a killed run in --out, skipping finished rounds")
    p.add_argument("--sketcher-steps", type=int, default=0,
                   help="with --filter consistency: also fine-tune the sketcher this many steps a round on the kept "
                        "chains' verified transitions (0: off)")
    p.add_argument("--batch", type=int, default=64, help="problems sampled together (each with --n chains: lower it for "
                                                        "long chains, which hold memory)")
    p.set_defaults(run=_improve)


    p = commands.add_parser("distill", help="distil a test-time strategy into one pass: vot distill --task maze --from maze "
                                            "--strategy self_consistency --n 16")
    p.add_argument("--task", required=True, help="MCQ task id or short name (maze)")
    p.add_argument("--from", dest="start", required=True, help="the teacher bundle (name or directory)")
    p.add_argument("--strategy", default="self_consistency", help="the teacher's test-time strategy (vot bench --strategy names)")
    p.add_argument("--n", type=int, default=16, help="the strategy's chains per problem")
    p.add_argument("--verifier", default="consistency", help="the verifier of strategies that score chains")
    p.add_argument("--filter", default="none", help="a vot improve --filter the selected chain must also pass, e.g. "
                                                   "consistency (none: keep every selection; gold is a control)")
    p.add_argument("--sizes", type=_integers("sizes"), default=[7, 8], help="sizes of the unlabelled train problems")
    p.add_argument("--problems", type=int, default=100, help="unlabelled problems per size")
    p.add_argument("--steps", type=int, default=300, help="training steps")
    p.add_argument("--chain-share", type=float, default=0.5, help="share of training batches from selected chains (the "
                                                                  "rest: gold replay)")
    p.add_argument("--eval-count", type=int, default=25, help="test problems per size for the card's table")
    p.add_argument("--eval-sizes", type=_integers("sizes"), default=[], help="default: the training sizes and --sizes")
    p.add_argument("--sketcher", default="default", help="default (the shipped diffusion sketcher) or oracle")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--out", required=True, help="a new directory: selected chains, the trained policy and the bundle")
    p.add_argument("--resume", action="store_true", help="continue a killed run in --out: the sizes it selected are kept "
                                                         "(also: train a copy of a run's directory again with other "
                                                         "--steps)")
    p.add_argument("--train-batch", type=int, default=None,
                   help="training batch size (default: the preset's 16; long planning chains need less memory at 4)")
    p.add_argument("--batch", type=int, default=32, help="problems run together (each with --n chains: lower it for long "
                                                        "chains, which hold memory)")
    p.set_defaults(run=_distill)


def _distill(args) -> int:
    import tasks
    from vot.distill import DistillConfig, distill
    from vot.improve import command_line

    config = DistillConfig(task=tasks.get(args.task).id, start=args.start, out=args.out, strategy=args.strategy, n=args.n,
                           verifier=args.verifier, filter=args.filter, sizes=args.sizes, problems_per_size=args.problems,
                           steps=args.steps, chain_share=args.chain_share, eval_count=args.eval_count,
                           eval_sizes=args.eval_sizes, seed=args.seed, device=args.device, sketcher=args.sketcher,
                           batch=args.batch, resume=args.resume, train_batch=args.train_batch)
    print(f"wrote the distilled bundle {distill(config, command=command_line())}")
    return 0


def _improve(args) -> int:
    import tasks
    from vot.improve import ImproveConfig, command_line, improve

    task = tasks.get(args.task)
    config = ImproveConfig(task=task.id, start=args.start, out=args.out or f"runs/improve-{task.id}-{args.filter}",
                           rounds=args.rounds, sizes=args.sizes, sizes_per_round=args.sizes_per_round, filter=args.filter,
                           n=args.n, vote_share=args.vote_share, problems_per_size=args.problems, steps=args.steps,
                           chain_share=args.chain_share, eval_count=args.eval_count, eval_sizes=args.eval_sizes,
                           seed=args.seed, device=args.device, resume=args.resume, sketcher=args.sketcher,
                           batch=args.batch, sketcher_steps=args.sketcher_steps)
    from vot.distributed import Shard

    out = improve(config, command=command_line())
    if Shard.current().is_main:
        print(f"wrote {out}")
    return 0


def _train_policy(args) -> int:
    import tasks
    from vot.lm.train import PolicyTrainConfig, export_checkpoint, train_policy

    task = tasks.get(args.task)
    out = args.out or f"checkpoints/policy-{task.id}-{args.mode}-{args.preset}"
    if args.export:
        print(f"exported the latest checkpoint of {out} to {export_checkpoint(out)}")
        return 0
    config = PolicyTrainConfig(task=task.id, mode=args.mode, preset=args.preset, steps=args.steps, out=out, seed=args.seed,
                               resume=args.resume, device=args.device, sketcher_share=args.sketcher_share,
                               answer_weight=args.answer_weight, eval_every=args.eval_every,
                               stop_at_accuracy=args.stop_at_accuracy, canvas_share=args.canvas_share,
                               init_from=args.init_from, index_shift_share=args.index_shift_share,
                               position_gap=args.position_gap,
                               eval_count=args.eval_count, problems_per_size=args.problems_per_size,
                               sizes=args.sizes, shape=_shape_overrides(args))
    print(f"saved the policy to {train_policy(config)}")
    return 0


def _shape_overrides(args) -> dict | None:
    """The `PolicyShape` fields the policy flags set (None: the preset's shape)."""
    shape = (({"perception_edges": True} if args.edge_perception else {})
             | ({"perception_context": True} if args.context_perception else {})
             | ({"patch": args.patch} if args.patch else {}))
    return shape or None


def _train_sketcher(args) -> int:
    from imagegen.train import SketcherTrainConfig, train_sketcher

    config = SketcherTrainConfig(task=args.task, preset=args.preset, steps=args.steps,
                                 out=args.out or f"checkpoints/sketcher-{args.task}-{args.preset}", seed=args.seed,
                                 resume=args.resume, device=args.device, init_from=args.init_from,
                                 problems_per_size=args.problems_per_size, condition_noise=args.condition_noise)
    print(f"saved the sketcher to {train_sketcher(config)}")
    return 0


def _train_verifier(args) -> int:
    import tasks
    from vot.verifier_train import VerifierTrainConfig, train_verifier

    task = tasks.get(args.task)  # a short name means the current version, as everywhere
    config = VerifierTrainConfig(task=task.id, bundle=args.bundle, chains_per_problem=args.chains_per_problem,
                                 problems_per_size=args.problems_per_size, steps=args.steps or 600,
                                 out=args.out or f"checkpoints/verifier-{task.id}", seed=args.seed, sizes=args.sizes,
                                 resume=args.resume, device=args.device)
    print(f"saved the verifier to {train_verifier(config)}")
    return 0
