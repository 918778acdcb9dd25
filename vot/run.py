"""The run record: what ``vot bench`` wrote to a run directory, read back typed, in one place.

    run = read_run("runs/maze-mcq-v0-simulated-oracle-seed0")
    run.config["task"], run.summary["metrics"]       # config.json; summary.json (None until written)
    for entry in run.problems:                       # every problem, in run order
        entry.problem.prompt, entry.size
        for group, records in entry.groups().items():   # "pool@4", "greedy@1", "refine@4", ...
            records[0].selected, records[0].correct, records[0].chain.answer, records[0].chain_scores

On disk (``vot.chain.ChainLog`` writes it): ``results.jsonl`` holds one `ChainRecord` per line,
``problems.jsonl`` the problems (`vot.data`), ``config.json`` and ``summary.json`` the config and the
metrics. Chains load without their sketches (`Run.sketched` opens the PNG files). A run directory
from before ``problems.jsonl`` still loads: its problems are re-generated from their split ids
(`problem_from_id`).
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from PIL import Image

import tasks
from tasks import Problem
from vot.chain import Chain, ChainLog, Compute
from vot.data import PROBLEMS, read_problems


@dataclass
class ResultSummary:
    """A strategy's outcome on one problem, repeated on each chain of its group: the selected
    answer, whether it is right, how many chains it ran, and the compute of the whole group."""

    answer: str | None
    correct: bool
    chains_used: int
    compute: Compute

    def to_json(self) -> dict:
        return {"answer": self.answer, "correct": self.correct, "chains_used": self.chains_used,
                "compute": asdict(self.compute)}

    @classmethod
    def from_json(cls, record: dict) -> "ResultSummary":
        return cls(record["answer"], bool(record["correct"]), int(record["chains_used"]), Compute(**record["compute"]))


@dataclass
class ChainRecord:
    """One line of ``results.jsonl``: a chain and where it stands in the run.

    ``strategy`` is ``pool`` for the sampled pool that the sampling strategies are read off (then
    ``verifier`` is ``none``, ``result`` is None and ``chain_scores`` holds each verifier's score of
    the chain); a search strategy's chains carry its ``verifier``, its ``result`` and ``selected``
    on the chain it chose. ``correct`` grades this chain's own answer."""

    problem_id: str
    size: int
    strategy: str
    n: int
    verifier: str
    selected: bool
    correct: bool
    result: ResultSummary | None
    chain: Chain
    chain_scores: dict[str, float] = field(default_factory=dict)

    @property
    def group(self) -> str:
        """``strategy@n``, as ``summary.json`` metrics and ``vot show`` name it."""
        return f"{self.strategy}@{self.n}"

    def to_json(self) -> dict:
        """The log line (without ``schema`` and ``block``, which `vot.chain.ChainLog` adds)."""
        record = {"problem_id": self.problem_id, "size": self.size, "strategy": self.strategy, "n": self.n,
                  "verifier": self.verifier, "selected": self.selected, "correct": self.correct,
                  "result": self.result.to_json() if self.result is not None else None, "chain": self.chain.to_json()}
        if self.chain_scores:
            record["chain_scores"] = dict(self.chain_scores)
        return record

    @classmethod
    def from_json(cls, record: dict) -> "ChainRecord":
        result = ResultSummary.from_json(record["result"]) if record["result"] is not None else None
        return cls(record["problem_id"], int(record["size"]), record["strategy"], int(record["n"]), record["verifier"],
                   bool(record["selected"]), bool(record["correct"]), result, Chain.from_json(record["chain"]),
                   dict(record.get("chain_scores", {})))


@dataclass
class ProblemRecord:
    """One problem of a run and its chain records (empty while the problem is not finished)."""

    problem: Problem
    chains: list[ChainRecord] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.problem.id

    @property
    def size(self) -> int:
        return int(self.problem.meta["size"])

    def groups(self) -> dict[str, list[ChainRecord]]:
        """``{strategy@n: its chain records}`` in log order (the pool first, then the searches)."""
        groups: dict[str, list[ChainRecord]] = {}
        for record in self.chains:
            groups.setdefault(record.group, []).append(record)
        return groups

    def result(self, group: str) -> ResultSummary | None:
        """The search group's outcome (None for the pool or a group this problem lacks)."""
        return next((r.result for r in self.chains if r.group == group and r.result is not None), None)


@dataclass
class Run:
    """A run directory read back: config, summary (None until written), every problem with its chains."""

    dir: Path
    config: dict
    summary: dict | None
    problems: list[ProblemRecord]

    @property
    def task(self) -> tasks.Task:
        return tasks.get(self.config["task"])

    @property
    def records(self) -> list[ChainRecord]:
        """Every chain record, problem by problem in run order (log order within a problem)."""
        return [r for entry in self.problems for r in entry.chains]

    @property
    def finished(self) -> list[ProblemRecord]:
        """The problems with chains in the log."""
        return [entry for entry in self.problems if entry.chains]

    def problem(self, problem_id: str | None = None) -> ProblemRecord:
        """One finished problem (default: the first); a clear error for an unknown id."""
        finished = self.finished
        if not finished:
            raise ValueError(f"{self.dir / 'results.jsonl'} holds no complete problem")
        if problem_id is None:
            return finished[0]
        found = next((entry for entry in finished if entry.id == problem_id), None)
        if found is None:
            raise ValueError(f"problem {problem_id!r} is not in {self.dir}; it has {len(finished)} problems, "
                             f"e.g. {finished[0].id}")
        return found

    def sketched(self, record: ChainRecord, cache: dict | None = None) -> Chain:
        """A copy of ``record.chain`` with its sketches opened from their PNG files (``cache``:
        path -> image, shared across calls so chains that share sketches share the images)."""
        return with_sketches(record.chain, self.dir, cache)


def with_sketches(chain: Chain, run_dir: str | Path, cache: dict | None = None) -> Chain:
    """A copy of ``chain`` whose steps carry the images their ``sketch_path`` names."""
    cache = {} if cache is None else cache

    def opened(path: str) -> Image.Image:
        if path not in cache:
            with Image.open(Path(run_dir) / path) as image:
                cache[path] = image.convert("RGB")
        return cache[path]

    steps = [replace(s, sketch=opened(s.sketch_path) if s.sketch_path else s.sketch) for s in chain.steps]
    return replace(chain, steps=steps)


def read_run(run_dir: str | Path) -> Run:
    """Read a ``vot bench`` run directory (read-only). Problems come from ``problems.jsonl``, or, in
    a run directory written before it existed, are re-generated from the split ids in the log.
    Raises ValueError for a directory without ``results.jsonl`` or a log naming unknown problems."""
    run_dir = Path(run_dir)
    if not (run_dir / "results.jsonl").is_file():
        raise ValueError(f"{run_dir} has no results.jsonl (is it a `vot bench` run directory?)")
    if not (run_dir / "config.json").is_file():
        raise ValueError(f"{run_dir} has results.jsonl but no config.json")
    config = json.loads((run_dir / "config.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").is_file() else None
    records = [ChainRecord.from_json(r) for r in ChainLog(run_dir).records()]
    if (run_dir / PROBLEMS).is_file():
        problems = read_problems(run_dir / PROBLEMS)
    else:
        problems = [problem_from_id(pid) for pid in dict.fromkeys(r.problem_id for r in records)]
    entries = {p.id: ProblemRecord(p) for p in problems}
    for record in records:
        if record.problem_id not in entries:
            raise ValueError(f"{run_dir}: results.jsonl has chains of {record.problem_id!r}, which {PROBLEMS} lacks")
        entries[record.problem_id].chains.append(record)
    return Run(run_dir, config, summary, list(entries.values()))


# --- problems of runs without problems.jsonl -----------------------------------------------------
_ID = re.compile(r"^(?P<task>[^/]+)/(?P<split>[^/]+)/s(?P<size>\d+)/seed(?P<seed>-?\d+)/(?P<index>\d+)$")
_SPLITS: dict[tuple, list[Problem]] = {}


def problem_from_id(problem_id: str) -> Problem:
    """Re-generate a problem from its split id (``maze-mcq-v0/test/s3/seed0/00001``); splits are
    deterministic, so this is the problem the run saw. Streams are cached per (task, split, size, seed)."""
    from tasks.splits import generate_split

    match = _ID.match(problem_id)
    if match is None:
        raise ValueError(f"{problem_id!r} is not a split id like 'maze-mcq-v0/test/s3/seed0/00001'")
    task = tasks.get(match["task"])
    key = (task, match["split"], int(match["size"]), int(match["seed"]))  # the task object: re-registering resets
    index = int(match["index"])
    cached = _SPLITS.get(key, [])
    if len(cached) <= index:  # a longer stream starts with the shorter one, so the cache only grows
        cached = generate_split(task, key[1], key[2], count=index + 1, seed=key[3])
        _SPLITS[key] = cached
    problem = cached[index]
    if problem.id != problem_id:
        raise ValueError(f"re-generated {problem.id!r}, not {problem_id!r}")
    return Problem.from_json(problem.to_json())  # a copy: callers may change theirs
