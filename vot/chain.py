"""Chains and their log: the typed, versioned interface between the CLI, reports and notebooks.

A `Chain` is one attempt at one problem: its `Step`s (thought, sketch, token log-probs, verifier
scores), its final answer, whether it finished, and the compute it used. On disk a run directory's
``results.jsonl`` holds one chain per line; sketches are PNG files next to it, referenced by relative
path, never inlined. `vot.run.read_run` reads a whole run directory back as typed records.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from PIL import Image

LOG_SCHEMA = "vot.chain/1"


@dataclass
class Compute:
    """Work spent on a chain (or summed over a problem).

    ``sketches`` and ``denoising_steps`` count every sketch drawn, including the candidates a
    sketch-level search drew and rejected. ``policy_seconds`` and ``sketch_seconds`` split
    ``wall_seconds`` into the chain's share of the policy calls and of the sketch + encode +
    observe calls, so a run can measure what a token and a denoising step cost
    (`vot.compute.CostModel`)."""

    policy_tokens: int = 0
    sketches: int = 0
    denoising_steps: int = 0
    encoder_calls: int = 0
    wall_seconds: float = 0.0
    policy_seconds: float = 0.0
    sketch_seconds: float = 0.0

    def add(self, other: "Compute") -> "Compute":
        return Compute(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def counts(self) -> dict:
        """The work counted in units (tokens, sketches, steps, calls), without the timings, which
        are the only fields a rerun may change."""
        return {k: v for k, v in asdict(self).items() if k not in TIMING_FIELDS}

    def untimed(self) -> "Compute":
        """A copy with every timing field at zero (for comparing runs)."""
        return Compute(**self.counts())


TIMING_FIELDS = ("wall_seconds", "policy_seconds", "sketch_seconds")


@dataclass
class Step:
    """One thought, with the sketch drawn after it (``None`` for text-only chains or the answer).

    ``sketch`` is the in-memory image; ``sketch_path`` is where the log stored it (relative to the
    run directory). ``scores`` maps a verifier label (``consistency``, ``confidence`` …) to a score."""

    thought: str
    logprobs: list[float] = field(default_factory=list)
    sketch: Image.Image | None = field(default=None, repr=False, compare=False)
    sketch_path: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    is_answer: bool = False

    def to_json(self) -> dict:
        record = asdict(self)
        record.pop("sketch")
        return record


@dataclass
class Chain:
    """One reasoning chain for one problem. ``sample`` indexes the chain among the problem's N."""

    problem_id: str
    task: str
    sample: int = 0
    steps: list[Step] = field(default_factory=list)
    answer: str | None = None
    finished: bool = False
    compute: Compute = field(default_factory=Compute)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def answered_walked(self) -> bool:
        """Whether the chain's answer is the plan its thoughts walked, not its answer thought's text
        (`vot.reasoner.Reasoner` ``answer="walked"``)."""
        return self.meta.get("answer") == "walked" and self.answer is not None

    @property
    def thoughts(self) -> list[str]:
        return [s.thought for s in self.steps]

    @property
    def sketches(self) -> list[Image.Image]:
        return [s.sketch for s in self.steps if s.sketch is not None]

    @property
    def logprobs(self) -> list[float]:
        return [lp for s in self.steps for lp in s.logprobs]

    def fork(self, sample: int | None = None, keep_steps: int | None = None) -> "Chain":
        """A copy to continue differently (beam search, refinement), optionally cut to its first
        ``keep_steps`` steps. Sketches are shared, not copied. The copy's ``compute`` starts at zero:
        it counts only the work done after the fork, so summing every chain a search created gives
        its total cost without counting shared prefixes twice."""
        kept = self.steps if keep_steps is None else self.steps[:keep_steps]
        steps = [Step(s.thought, list(s.logprobs), s.sketch, s.sketch_path, dict(s.scores), s.is_answer) for s in kept]
        finished = self.finished if keep_steps is None else False
        answer = self.answer if keep_steps is None else None
        meta = dict(self.meta, forked_from=self.sample)
        if keep_steps is not None:  # the answer is dropped, and with it where it came from
            for key in ("answer", "written_answer", "stopped"):  # a rewound chain has not stopped either
                meta.pop(key, None)
        return Chain(self.problem_id, self.task, self.sample if sample is None else sample, steps, answer, finished,
                     Compute(), meta)

    def to_json(self) -> dict:
        return {
            "problem_id": self.problem_id, "task": self.task, "sample": self.sample,
            "steps": [s.to_json() for s in self.steps], "answer": self.answer, "finished": self.finished,
            "compute": asdict(self.compute), "meta": self.meta,
        }

    @classmethod
    def from_json(cls, record: dict, run_dir: str | Path | None = None) -> "Chain":
        """Rebuild a chain; with ``run_dir`` its sketches are loaded from their files."""
        steps = []
        for s in record["steps"]:
            sketch = None
            if run_dir is not None and s.get("sketch_path"):
                with Image.open(Path(run_dir) / s["sketch_path"]) as image:
                    sketch = image.convert("RGB")
            steps.append(Step(s["thought"], list(s["logprobs"]), sketch, s.get("sketch_path"), dict(s["scores"]), s["is_answer"]))
        return cls(record["problem_id"], record["task"], record["sample"], steps, record["answer"], record["finished"],
                   Compute(**record["compute"]), dict(record.get("meta", {})))


def safe_name(text: str) -> str:
    """A file-system-safe name for ids like ``maze-mcq-v0/test/s5/seed0/00001``."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


class ChainLog:
    """Append-only ``results.jsonl`` plus ``sketches/``; one JSON line per chain.

    Lines are written and flushed one problem at a time (``write_problem``), so a killed run keeps
    every finished problem and ``--resume`` skips them. ``name`` picks another log file in the run
    directory (one per process of a sharded run, e.g. ``results.rank1.jsonl``)."""

    def __init__(self, run_dir: str | Path, name: str = "results.jsonl"):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / name

    def write_problem(self, records: list[dict], chains_by_record: list[Chain]) -> None:
        """Save the sketches of ``chains_by_record`` and append ``records`` (each carrying its chain
        under ``"chain"``) as one flushed block."""
        for record, chain in zip(records, chains_by_record):
            self._save_sketches(chain)
            record["chain"] = chain.to_json()
            record["schema"] = LOG_SCHEMA
            record["block"] = len(records)  # lines written together for this problem
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as handle:
            handle.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
            handle.flush()

    def _save_sketches(self, chain: Chain) -> None:
        """Content-addressed per problem: identical sketches (common across sampled chains and
        search branches) are stored once, as ``sketches/<problem>/<hash>.png``."""
        folder = Path("sketches") / safe_name(chain.problem_id)
        (self.run_dir / folder).mkdir(parents=True, exist_ok=True)
        for step in chain.steps:
            if step.sketch is not None:
                digest = hashlib.sha1(f"{step.sketch.mode}{step.sketch.size}".encode() + step.sketch.tobytes()).hexdigest()[:20]
                relative = folder / f"{digest}.png"
                if not (self.run_dir / relative).exists():
                    step.sketch.save(self.run_dir / relative)
                step.sketch_path = relative.as_posix()

    def records(self) -> list[dict]:
        """The lines of every completely written problem block; a block torn by a killed run (a
        partial last line or missing lines) is left out."""
        if not self.path.exists():
            return []
        by_problem: dict[str, list[dict]] = {}
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("schema") != LOG_SCHEMA:
                raise ValueError(f"{self.path}: line has schema {record.get('schema')!r}, expected {LOG_SCHEMA!r}")
            by_problem.setdefault(record["problem_id"], []).append(record)
        return [r for block in by_problem.values() if len(block) == block[0]["block"] for r in block]

    def problem_ids(self) -> set[str]:
        """The ids of the problems whose block is complete (what ``--resume`` skips)."""
        return {r["problem_id"] for r in self.records()}

    def compact(self) -> set[str]:
        """Rewrite the log keeping only complete blocks (before resuming); returns their problem ids."""
        records = self.records()
        if self.path.exists():
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
            tmp.replace(self.path)
        return {r["problem_id"] for r in records}


def write_problem_chains(path: str | Path, pairs) -> None:
    """Append (problem, chain) pairs to the JSONL file ``path`` (sketches beside it, as `ChainLog`
    stores them): the training data of self-improvement and distillation (`read_problem_chains`)."""
    path = Path(path)
    log = ChainLog(path.parent, path.name)
    for problem, chain in pairs:
        log.write_problem([{"problem": problem.to_json()}], [chain])


def read_problem_chains(path: str | Path) -> list:
    """The (problem, chain) pairs of a file written by `write_problem_chains`, sketches loaded."""
    from tasks import Problem

    path = Path(path)
    pairs = []
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            pairs.append((Problem.from_json(record["problem"]), Chain.from_json(record["chain"], path.parent)))
    return pairs
