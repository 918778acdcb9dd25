"""`vot bench` sharded over processes by accelerate's launcher gives the single-process run's results.

Accelerate 1.15 starts several CPU processes with ``--multi_gpu`` (torchrun; gloo when there is no
GPU); its ``--cpu --num_processes K`` starts one process unless mpirun is used (--mpirun_hostfile).
"""
import json
import os
import shutil
import subprocess
import sys
from collections import Counter

import pytest

from vot.bench import BenchConfig, run_bench
from vot.distributed import Shard, launched, merge_rank_logs
from run_helpers import without_timing

ARGS = ["maze-mcq-v0", "--size", "3", "--count", "6", "--n", "1,2", "--policy", "simulated", "--sketcher", "oracle",
        "--strategy", "greedy,best_of_n,weighted_best_of_n,self_consistency"]


def _config(out, resume=False):
    return BenchConfig(task="maze-mcq-v0", policy="simulated", sketcher="oracle", sizes=[3], count=6,
                       n=[1, 2], out=str(out), resume=resume,
                       strategies=["greedy", "best_of_n", "weighted_best_of_n", "self_consistency"])


def _lines(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def _key(record):
    return record["problem_id"], record["strategy"], record["n"], record["chain"]["sample"]


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    return out, run_bench(_config(out), progress=False)


def test_plain_process_is_rank_0_of_1():
    assert not launched()
    shard = Shard.current()
    assert (shard.rank, shard.world, shard.is_main, shard.log_name) == (0, 1, True, "results.jsonl")
    assert shard.pick([1, 2, 3]) == [1, 2, 3]
    assert Shard(1, 2).pick(list(range(5))) == [1, 3] and Shard(1, 2).log_name == "results.rank1.jsonl"


def test_accelerate_launch_two_processes_matches_one(tmp_path, single):
    out = tmp_path / "sharded"
    env = dict(os.environ, HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--num_cpu_threads_per_process", "1", "--main_process_port", "0",
               "-m", "vot", "bench", *ARGS, "--out", str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "0 already done over 2 processes" in done.stdout
    assert done.stdout.count("wrote ") == 1  # only the main process summarizes

    single_out, expected = single
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"] == json.loads(json.dumps(expected["metrics"]))
    assert summary["curves"] == json.loads(json.dumps(expected["curves"]))
    assert summary["config"] == json.loads((out / "config.json").read_text()) == expected["config"]
    for name in ("scaling.png", "scaling.json", "report.html"):
        assert (out / name).is_file()
    assert not list(out.glob("results.rank*")) and not list(out.glob("*.tmp"))
    assert (out / "problems.jsonl").read_text() == (single_out / "problems.jsonl").read_text()  # the main process's

    merged, alone = _lines(out), _lines(single_out)
    assert all(count == 1 for count in Counter(map(_key, merged)).values())
    problems = {r["problem_id"] for r in alone}
    assert len(problems) == 6
    groups: dict = {}
    for record in merged:
        groups.setdefault((record["strategy"], record["n"]), Counter())[record["problem_id"]] += record["result"] is not None or record["strategy"] == "pool"
    for (strategy, n), counts in groups.items():
        assert set(counts) == problems
        assert set(counts.values()) == ({2} if strategy == "pool" else {1})  # pool: N_max=2 chains; else one result
    assert [r["problem_id"] for r in merged] == [r["problem_id"] for r in alone]  # problem order
    assert sorted(map(without_timing, merged), key=_key) == sorted(map(without_timing, alone), key=_key)
    for record in merged:
        for step in record["chain"]["steps"]:
            assert step["sketch_path"] is None or (out / step["sketch_path"]).is_file()


def test_resume_merges_rank_files_of_a_killed_run(tmp_path, single):
    """A killed 2-process run left rank files (one with a torn block) and no results.jsonl: --resume
    keeps their complete blocks, reruns the rest and summarizes as the uninterrupted run did."""
    single_out, expected = single
    out = tmp_path / "killed"
    shutil.copytree(single_out, out)
    alone = (out / "results.jsonl").read_text().splitlines(keepends=True)
    (out / "results.jsonl").unlink()
    for name in ("summary.json", "report.html"):
        (out / name).unlink()
    ids = list(dict.fromkeys(json.loads(line)["problem_id"] for line in alone))
    by_rank = [[line for line in alone if ids.index(json.loads(line)["problem_id"]) % 2 == rank] for rank in (0, 1)]
    (out / "results.rank0.jsonl").write_text("".join(by_rank[0]))
    (out / "results.rank1.jsonl").write_text("".join(by_rank[1][:-1]) + by_rank[1][-1][:40])  # torn last block

    with pytest.raises(ValueError, match="already holds a run"):
        run_bench(_config(out), progress=False)
    summary = run_bench(_config(out, resume=True), progress=False)
    assert summary["metrics"] == expected["metrics"] and summary["curves"] == expected["curves"]
    assert not list(out.glob("results.rank*"))
    merged = _lines(out)
    assert sorted(map(without_timing, merged), key=_key) == sorted(map(without_timing, map(json.loads, alone)), key=_key)
    assert [r["problem_id"] for r in merged][-1] == ids[-1]  # the torn problem was rerun last


def test_merge_skips_problems_already_merged(tmp_path, single):
    single_out, _ = single
    out = tmp_path / "run"
    shutil.copytree(single_out, out)
    text = (out / "results.jsonl").read_text()
    (out / "results.rank1.jsonl").write_text(text)  # every block again: nothing to add
    assert merge_rank_logs(out, []) == 0
    assert (out / "results.jsonl").read_text() == text and not (out / "results.rank1.jsonl").exists()
