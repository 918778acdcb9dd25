"""Per-chain randomness: a chain's sketches and thoughts depend only on (seed, problem, lineage,
step), never on batching, order, resuming or what ran before, with a real (tiny, random) diffusion
sketcher whose output follows its noise. A batched UNet may round a pixel differently from the same
UNet at batch 1 (float sums in another order), so diffusion sketches are compared to within 2 of
255 per channel; everything else, and every sketch of the exact `SlipSketcher`, must be identical."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

import tasks
from imagegen.base import SlipSketcher
from imagegen.train import build_pipeline
from tasks.splits import generate_split
from vision_encoder.base import PixelPatchEncoder
from vot.cli import main
from vot.keys import sketch_seed
from vot.policy import SimulatedPolicy
from vot.reasoner import Reasoner
from run_helpers import without_timing

TASK = tasks.get("maze-mcq")


@pytest.fixture(scope="module")
def pipe():
    return build_pipeline("maze", "tiny", seed=0)


def _reasoner(sketcher, seed=0):
    return Reasoner(SimulatedPolicy(0.3, seed=seed), sketcher, max_steps=6, sketch_steps=2, seed=seed)


def _problems():
    return generate_split(TASK, "test", 3, 3, 0) + generate_split(TASK, "test", 4, 3, 0)


def _fingerprint(chain):
    return (chain.problem_id, chain.sample, tuple(chain.thoughts), chain.answer,
            tuple(np.asarray(s.sketch).tobytes() for s in chain.steps if s.sketch is not None))


def _same(a, b, tolerance=2):
    """Chains equal but for pixel rounding of at most ``tolerance``."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert (x.problem_id, x.sample, x.thoughts, x.answer) == (y.problem_id, y.sample, y.thoughts, y.answer)
        for s, t in zip(x.steps, y.steps):
            assert (s.sketch is None) == (t.sketch is None)
            if s.sketch is not None:
                assert np.abs(np.asarray(s.sketch, dtype=int) - np.asarray(t.sketch, dtype=int)).max() <= tolerance


def test_sketch_keys_differ_by_every_part():
    base = sketch_seed(0, "p", (0,), 1, 0)
    assert base == sketch_seed(0, "p", (0,), 1, 0)
    others = [sketch_seed(1, "p", (0,), 1, 0), sketch_seed(0, "q", (0,), 1, 0), sketch_seed(0, "p", (1,), 1, 0),
              sketch_seed(0, "p", (0, 1), 1, 0), sketch_seed(0, "p", (0,), 2, 0), sketch_seed(0, "p", (0,), 1, 1)]
    assert len(set(others + [base])) == len(others) + 1


def test_chains_do_not_depend_on_batching_order_or_what_ran_before(pipe):
    problems = _problems()
    together = [c for chains in _reasoner(pipe).run(problems, 3) for c in chains]
    reasoner = _reasoner(pipe)
    reasoner.run(problems[:2], 2)  # work done before in the same process
    alone = {p.id: reasoner.run([p], 3)[0] for p in reversed(problems)}
    _same(together, [c for p in problems for c in alone[p.id]])
    first_sketches = {np.asarray(c.steps[0].sketch).tobytes() for c in together}
    assert len(first_sketches) == len(together)  # the chains of one problem get their own imagination


def test_the_seed_changes_the_sketches(pipe):
    problems = _problems()[:2]
    a = [_fingerprint(c) for cs in _reasoner(pipe, seed=0).run(problems, 2) for c in cs]
    b = [_fingerprint(c) for cs in _reasoner(pipe, seed=1).run(problems, 2) for c in cs]
    assert [f[4] for f in a] != [f[4] for f in b]


def _bench(sketcher_dir, out, *extra):
    """The run's chains: the records without timings and sketch paths, and the sketches as arrays."""
    argv = ["bench", "maze-mcq", "--size", "3,4", "--count", "4", "--n", "1,2", "--strategy", "greedy,best_of_n,refine",
            "--policy", "simulated", "--sketcher", str(sketcher_dir), "--sketch-steps", "2",
            "--max-steps", "6", "--seed", "2", "--out", str(out), *extra]
    assert main(argv) == 0
    rows = []
    for line in (out / "results.jsonl").read_text().splitlines():
        record = without_timing(json.loads(line))
        paths = [s.pop("sketch_path") for s in record["chain"]["steps"]]
        rows.append((json.dumps(record, sort_keys=True),
                     [None if p is None else np.asarray(Image.open(out / p).convert("RGB"), dtype=int) for p in paths]))
    return sorted(rows, key=lambda row: row[0])


def _same_runs(a, b, tolerance=2):
    assert [row[0] for row in a] == [row[0] for row in b]
    for (_, x), (_, y) in zip(a, b):
        assert all((s is None and t is None) or np.abs(s - t).max() <= tolerance for s, t in zip(x, y))


def test_bench_batch_size_and_resuming_leave_every_chain_unchanged(pipe, tmp_path):
    sketcher = tmp_path / "sketcher"
    pipe.save_pretrained(sketcher)
    big = _bench(sketcher, tmp_path / "batch8", "--batch", "8")
    small = _bench(sketcher, tmp_path / "batch3", "--batch", "3")
    _same_runs(big, small)  # chain by chain, sketches included
    resumed = tmp_path / "resumed"
    shutil.copytree(tmp_path / "batch3", resumed)
    lines = (resumed / "results.jsonl").read_text().splitlines()
    first = json.loads(lines[0])["problem_id"]
    kept = [line for line in lines if json.loads(line)["problem_id"] == first]
    (resumed / "results.jsonl").write_text("\n".join(kept) + "\n")
    _same_runs(_bench(sketcher, resumed, "--batch", "5", "--resume"), big)


def test_slip_sketcher_slips_from_its_generators_only():
    problems = _problems()
    rows = [_fingerprint(c) for cs in _reasoner(SlipSketcher(TASK, 0.5)).run(problems, 2) for c in cs]
    again = [_fingerprint(c) for p in problems for c in _reasoner(SlipSketcher(TASK, 0.5)).run([p], 2)[0]]
    assert rows == again
    image = problems[0].image
    assert SlipSketcher(TASK, 1.0).sketch([image], ["Go up."])[0].tobytes() == \
        SlipSketcher(TASK, 0.0).sketch([image], ["Go up."])[0].tobytes()  # no generator: no slip
    with pytest.raises(ValueError, match="slip must be in"):
        SlipSketcher(TASK, 1.5)
