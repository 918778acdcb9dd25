"""Chains and their log: JSON round trips, sketches as files, torn writes, schema checks.

Chains come from the real reference loop (SimulatedPolicy + OracleSketcher + PixelPatchEncoder).
"""
import json

import numpy as np
import pytest
from PIL import Image

import tasks
from imagegen.base import OracleSketcher
from tasks.splits import generate_split
from vision_encoder.base import PixelPatchEncoder
from vot.chain import LOG_SCHEMA, Chain, ChainLog, Compute, Step
from vot.policy import SimulatedPolicy
from vot.reasoner import Reasoner

STEP_KEYS = {"thought", "logprobs", "sketch_path", "scores", "is_answer"}


@pytest.fixture
def pools():
    """Three problems (sizes 3 and 4), three chains each, with sketches, one forked chain and scores."""
    task = tasks.get("maze-mcq")
    problems = generate_split(task, "test", 3, 2, 0) + generate_split(task, "test", 4, 1, 0)
    reasoner = Reasoner(SimulatedPolicy(0.5, seed=1), OracleSketcher(task))
    pools = reasoner.run(problems, 3)
    pools[0][1].steps[0].scores["consistency"] = 0.25  # scores and meta must survive the trip too
    pools[0][1].meta["note"] = {"nested": [1, 2]}
    pools[1][2] = pools[1][2].fork(sample=7)
    return problems, pools


def _write_all(log: ChainLog, pools) -> None:
    for chains in pools:
        log.write_problem([{"problem_id": c.problem_id, "extra": i} for i, c in enumerate(chains)], chains)


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def test_chain_json_round_trip_without_run_dir(pools):
    _, chain_pools = pools
    for chains in chain_pools:
        for chain in chains:
            record = json.loads(json.dumps(chain.to_json()))  # must be plain JSON
            rebuilt = Chain.from_json(record)
            assert rebuilt == chain  # every field but the in-memory sketches
            assert rebuilt.sketches == []  # no run_dir: nothing to load
            assert all(set(step) == STEP_KEYS for step in record["steps"])
            assert Chain.from_json(rebuilt.to_json()).to_json() == record


def test_step_json_never_holds_the_image(pools):
    _, chain_pools = pools
    step = next(s for s in chain_pools[0][0].steps if s.sketch is not None)
    assert set(step.to_json()) == STEP_KEYS
    assert step.to_json()["sketch_path"] is None  # not written yet: no file, and no pixels either
    copy = Step("Go up.", [-0.1], sketch=step.sketch)
    assert copy == Step("Go up.", [-0.1])  # the image takes no part in equality


def test_log_round_trip_loads_sketches_pixel_identical(pools, tmp_path):
    _, chain_pools = pools
    log = ChainLog(tmp_path)
    _write_all(log, chain_pools)
    records = log.records()
    originals = [c for chains in chain_pools for c in chains]
    assert len(records) == len(originals)
    for record, original in zip(records, originals):
        rebuilt = Chain.from_json(record["chain"], tmp_path)
        assert rebuilt == original  # sketch_path was set on the original by write_problem
        assert len(rebuilt.steps) == len(original.steps)
        for got, want in zip(rebuilt.steps, original.steps):
            assert (got.sketch is None) == (want.sketch is None)
            if want.sketch is not None:
                assert not got.sketch_path.startswith("/") and got.sketch_path.startswith("sketches/")
                with Image.open(tmp_path / got.sketch_path) as stored:
                    assert stored.format == "PNG"
                assert got.sketch.size == want.sketch.size
                assert np.array_equal(_pixels(got.sketch), _pixels(want.sketch))
        assert len(rebuilt.sketches) == len(original.sketches) > 0


def test_sketches_are_files_never_inlined(pools, tmp_path):
    _, chain_pools = pools
    log = ChainLog(tmp_path)
    _write_all(log, chain_pools)
    text = log.path.read_text()
    assert "iVBOR" not in text and "base64" not in text  # no PNG payloads in the log

    def strings(value):
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for k, v in value.items():
                yield k
                yield from strings(v)
        elif isinstance(value, list):
            for v in value:
                yield from strings(v)

    for line in text.splitlines():
        record = json.loads(line)
        assert max(len(s) for s in strings(record)) < 300
        for step in record["chain"]["steps"]:
            assert set(step) == STEP_KEYS
    # content-addressed per problem: one file per distinct sketch of that problem
    for chains in chain_pools:
        distinct = {_pixels(s).tobytes() + repr(s.size).encode() for c in chains for s in c.sketches}
        folder = {step.sketch_path.rsplit("/", 1)[0] for c in chains for step in c.steps if step.sketch_path}
        assert len(folder) == 1
        assert len(list((tmp_path / folder.pop()).glob("*.png"))) == len(distinct)


def test_write_problem_and_records(pools, tmp_path):
    problems, chain_pools = pools
    log = ChainLog(tmp_path)
    assert log.records() == []  # no file yet
    _write_all(log, chain_pools)
    records = log.records()
    assert [r["problem_id"] for r in records] == [p.id for p in problems for _ in range(3)]
    for record in records:
        assert record["schema"] == LOG_SCHEMA
        assert record["block"] == 3
        assert record["chain"]["problem_id"] == record["problem_id"]
    assert [r["extra"] for r in records] == [0, 1, 2] * 3  # the caller's fields are kept
    assert [r["chain"]["sample"] for r in records[3:6]] == [0, 1, 7]
    assert log.path.read_text().endswith("\n")


def _truncate(lines: list[str], cut: str) -> tuple[str, int]:
    """The log text after a kill during the last (third) block, and how many blocks stay complete."""
    head = "".join(line + "\n" for line in lines[:6])
    last = lines[6:]
    if cut == "half of the block's first line":
        return head + last[0][: len(last[0]) // 2], 2
    if cut == "half of the block's last line":
        return head + "".join(line + "\n" for line in last[:-1]) + last[-1][: len(last[-1]) // 2], 2
    if cut == "block missing its last line":
        return head + "".join(line + "\n" for line in last[:-1]), 2
    if cut == "only the final newline lost":
        return head + "".join(line + "\n" for line in last)[:-1], 3
    raise AssertionError(cut)


@pytest.mark.parametrize("cut", ["half of the block's first line", "half of the block's last line",
                                 "block missing its last line", "only the final newline lost"])
def test_torn_writes_are_dropped_by_records_and_compact(pools, tmp_path, cut):
    problems, chain_pools = pools
    log = ChainLog(tmp_path)
    _write_all(log, chain_pools)
    complete = log.records()
    lines = log.path.read_text().splitlines()
    text, kept = _truncate(lines, cut)
    log.path.write_text(text)

    records = log.records()
    assert records == complete[: 3 * kept]
    assert log.compact() == {p.id for p in problems[:kept]}
    compacted = log.path.read_text()
    assert compacted.endswith("\n")
    assert [json.loads(line) for line in compacted.splitlines()] == complete[: 3 * kept]

    # resuming appends the missing block again; the log is then whole
    if kept < 3:
        log.write_problem([{"problem_id": c.problem_id, "extra": i} for i, c in enumerate(chain_pools[2])], chain_pools[2])
    assert log.records() == complete
    assert len(log.path.read_text().splitlines()) == 9


def test_compact_without_a_log_is_empty(tmp_path):
    log = ChainLog(tmp_path / "run")
    assert log.compact() == set()
    assert not log.path.exists()


@pytest.mark.parametrize("line", [
    {"schema": "vot.chain/0", "problem_id": "x", "block": 1},
    {"problem_id": "x", "block": 1},
    {"schema": "vot.summary/1"},
])
def test_a_line_with_another_schema_raises(pools, tmp_path, line):
    _, chain_pools = pools
    log = ChainLog(tmp_path)
    _write_all(log, chain_pools[:1])
    with log.path.open("a") as handle:
        handle.write(json.dumps(line) + "\n")
    before = log.path.read_text()
    with pytest.raises(ValueError, match="schema"):
        log.records()
    with pytest.raises(ValueError, match="schema"):
        log.compact()
    assert log.path.read_text() == before  # a failed compact rewrites nothing


def test_compute_add_and_fork_compute():
    a = Compute(policy_tokens=3, sketches=2, denoising_steps=10, encoder_calls=2, wall_seconds=0.5)
    b = Compute(policy_tokens=1, sketches=1, denoising_steps=5, encoder_calls=0, wall_seconds=0.25)
    assert a.add(b) == Compute(4, 3, 15, 2, 0.75)
    chain = Chain("p", "maze-mcq-v0", 0, [Step("Go up.", [-0.1])], compute=a)
    forked = chain.fork(sample=5, keep_steps=1)
    assert forked.compute == Compute() and forked.sample == 5 and forked.meta["forked_from"] == 0
    assert forked.steps == chain.steps and forked.steps[0] is not chain.steps[0]
