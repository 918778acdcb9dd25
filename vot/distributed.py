"""Sharding ``vot bench`` (and the sampling and evaluation of ``vot improve``) over the processes of a
launcher (``accelerate launch``, ``torchrun``).

Every process runs ``problems[rank::world]`` of the unfinished problems and appends its chains to
its own ``results.rank{r}.jsonl``; after a barrier the main process merges those files into
``results.jsonl`` (in problem order, one block per problem) and writes the summary. A plain
``python -m vot bench`` (no launcher) is rank 0 of 1, writes ``results.jsonl`` directly and never
imports accelerate or starts a process group.

Launching: ``accelerate launch --multi_gpu --num_processes K -m vot bench …`` (on a CPU-only machine
this starts K CPU processes over gloo) or ``torchrun --nproc_per_node K -m vot bench …``. Note that
accelerate's ``--cpu`` with ``--num_processes K`` starts K processes only through mpirun
(``--mpirun_hostfile``); without it accelerate starts a single process, which then runs everything.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from vot.chain import ChainLog

RESULTS = "results.jsonl"
RANK_GLOB = "results.rank*.jsonl"
_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")  # what accelerate reads


def launched() -> bool:
    """Whether a launcher started this process as one of several (torchrun/accelerate set
    ``WORLD_SIZE``; mpirun sets ``PMI_SIZE``/``OMPI_COMM_WORLD_SIZE``/``MV2_COMM_WORLD_SIZE``)."""
    for name in _SIZE_VARIABLES:
        try:
            if int(os.environ.get(name, "1")) > 1:
                return True
        except ValueError:
            continue
    return False


@dataclass(frozen=True)
class Shard:
    """This process's place among the launched ones: ``rank`` of ``world``."""

    rank: int = 0
    world: int = 1
    state: object = field(default=None, repr=False, compare=False)  # accelerate.PartialState when launched

    @classmethod
    def current(cls) -> "Shard":
        """Rank and world size from accelerate's ``PartialState`` when a launcher started several
        processes, else rank 0 of 1 (without touching accelerate)."""
        if not launched():
            if os.environ.get("ACCELERATE_USE_CPU", "").lower() == "true" and "MASTER_ADDR" in os.environ:
                print("vot bench: note: `accelerate launch --cpu --num_processes K` starts one process unless "
                      "given --mpirun_hostfile; running all problems here (use --multi_gpu, which runs K CPU "
                      "processes on a machine without GPUs, or torchrun --nproc_per_node K)", file=sys.stderr)
            return cls()
        import torch
        from accelerate import PartialState

        cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() == "true" or not torch.cuda.is_available()
        # a long barrier timeout: ranks wait in wait_for_everyone() for the slowest one to finish its share
        state = PartialState(cpu=cpu, timeout=timedelta(hours=24))
        return cls(state.process_index, state.num_processes, state)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def log_name(self) -> str:
        """This rank's chain log: ``results.jsonl`` itself when alone, else ``results.rank{r}.jsonl``."""
        return RESULTS if self.world == 1 else f"results.rank{self.rank}.jsonl"

    def pick(self, items: list) -> list:
        """This rank's share: every ``world``-th item starting at ``rank``."""
        return items[self.rank::self.world]

    def wait(self) -> None:
        """Barrier across the launched processes (nothing when alone)."""
        if self.state is not None:
            self.state.wait_for_everyone()

    def gather(self, value) -> list | None:
        """Every rank's ``value`` (picklable), in rank order, on the main process (``None`` on the
        others); ``[value]`` when alone."""
        if self.state is None:
            return [value]
        import torch.distributed as dist

        out = [None] * self.world if self.is_main else None
        dist.gather_object(value, out, dst=0)
        return out

    def broadcast(self, value):
        """The main process's ``value`` (picklable) on every process; ``value`` when alone."""
        if self.state is None:
            return value
        import torch.distributed as dist

        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def resume(self, out: Path, problems) -> set[str]:
        """Before resuming: the main process merges rank files a killed run left behind and compacts
        ``results.jsonl``; then every rank reads the ids of the finished problems."""
        if self.is_main:
            merge_rank_logs(out, problems)
            ChainLog(out).compact()
        self.wait()
        return ChainLog(out).problem_ids()


LAUNCHER_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK", "ROLE_WORLD_SIZE",
                      "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID", *_SIZE_VARIABLES)


def _run_child(fn, kwargs):
    fn(**kwargs)


def run_alone(fn, **kwargs) -> None:
    """``fn(**kwargs)`` in a fresh process that is not part of the launch (spawned with the
    launcher's variables removed): how the main process of a sharded ``vot improve`` trains, since an
    accelerate `Accelerator` made in a launched process would wait for the other processes' part
    of a data-parallel step. Raises if it fails."""
    import multiprocessing
    import signal

    saved = {name: os.environ.pop(name) for name in LAUNCHER_VARIABLES if name in os.environ}
    try:
        child = multiprocessing.get_context("spawn").Process(target=_run_child, args=(fn, kwargs))
        child.start()
    finally:
        os.environ.update(saved)

    def stop(signum, frame):  # the launcher stops this process (another rank failed): stop the child with it
        child.terminate()
        child.join()
        signal.signal(signum, previous)
        os.kill(os.getpid(), signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        child.join()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if child.exitcode != 0:
        raise RuntimeError(f"{getattr(fn, '__name__', fn)} failed in its own process (exit code {child.exitcode})")


def rank_logs(out: Path) -> list[Path]:
    return sorted(Path(out).glob(RANK_GLOB))


def has_results(out: Path) -> bool:
    """Whether ``out`` holds any complete chain block, in ``results.jsonl`` or in a rank file."""
    paths = [Path(out) / RESULTS, *rank_logs(out)]
    return any(path.exists() and ChainLog(out, name=path.name).problem_ids() for path in paths)


def merge_rank_logs(out: Path, problems) -> int:
    """Move the complete problem blocks of every ``results.rank*.jsonl`` into ``results.jsonl``:
    existing lines first, then new blocks in problem order; problems already in ``results.jsonl``
    (or in an earlier rank file) are skipped, torn blocks dropped. The rank files are deleted once
    ``results.jsonl`` is replaced. Returns the number of problems added. The lines move verbatim
    (this is the log layer, below the typed `vot.run` records). Only the main process writes
    ``problems.jsonl`` (`vot.bench`); the ranks read nothing but their problems' ids."""
    out = Path(out)
    paths = rank_logs(out)
    if not paths:
        return 0
    log = ChainLog(out)
    kept = log.records()
    seen = {r["problem_id"] for r in kept}
    blocks: dict[str, list[dict]] = {}
    for path in paths:
        found: dict[str, list[dict]] = {}
        for record in ChainLog(out, name=path.name).records():
            found.setdefault(record["problem_id"], []).append(record)
        for problem_id, block in found.items():
            if problem_id not in seen and problem_id not in blocks:
                blocks[problem_id] = block
    order = {p.id: i for i, p in enumerate(problems)}
    added = sorted(blocks, key=lambda pid: (order.get(pid, len(order)), pid))
    lines = [r for r in kept] + [r for pid in added for r in blocks[pid]]
    tmp = log.path.with_suffix(".merge.tmp")
    tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in lines))
    tmp.replace(log.path)
    for path in paths:
        path.unlink()
    return len(added)
