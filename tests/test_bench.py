"""``vot bench``: the run directory, the report's links, resuming (after a simulated and a real
kill), clear errors before any work, and ``vot show``."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from vot.chain import LOG_SCHEMA, ChainLog
from vot.cli import main
from vot.report import scaling_points
from run_helpers import without_timing

ALL = "greedy,best_of_n,weighted_best_of_n,self_consistency,beam,dvts,refine,adaptive"
SMALL = ["bench", "maze-mcq", "--size", "3,4", "--count", "3", "--n", "2,4", "--strategy", ALL,
         "--set", "width=2", "--seed", "1", "--error-rate", "0.4", "--policy", "simulated", "--sketcher", "oracle"]


def _bench(out, *extra, argv=SMALL):
    code = main([*argv, "--out", str(out), *extra])
    assert code == 0
    return json.loads((Path(out) / "summary.json").read_text())


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """One uninterrupted small run with every strategy (shared by the read-only tests)."""
    out = tmp_path_factory.mktemp("bench") / "run"
    return out, _bench(out)


def _lines(out):
    return [json.loads(line) for line in (Path(out) / "results.jsonl").read_text().splitlines()]


def _no_duplicate_chains(out):
    keys = Counter((r["problem_id"], r["strategy"], r["n"], r["chain"]["sample"]) for r in _lines(out))
    assert keys and max(keys.values()) == 1, [k for k, v in keys.items() if v > 1][:5]


def test_bench_writes_the_run_directory(small_run):
    out, summary = small_run
    for name in ("config.json", "results.jsonl", "summary.json", "scaling.png", "scaling.json", "report.html"):
        assert (out / name).is_file(), name
    assert summary["schema"] == "vot.summary/1"
    assert summary["config"] == json.loads((out / "config.json").read_text())
    assert summary["config"]["task"] == "maze-mcq-v1" and summary["config"]["strategies"] == ALL.split(",")
    assert summary["config"]["settings"] == {"width": 2} and summary["config"]["n"] == [2, 4]
    assert {"vot", "python", "numpy", "torch"} <= set(summary["versions"]) and summary["versions"]["vot"]
    assert summary["device"].startswith(("cpu", "cuda"))
    assert summary["reference_components"] == ["oracle", "simulated"]
    assert summary["selection_verifier"] == "consistency"
    assert summary["problems"] == 6
    expected = {"greedy@1"} | {f"{s}@{n}" for s in ALL.split(",")[1:] for n in (2, 4)}
    assert set(summary["metrics"]) == expected
    for group, metric in summary["metrics"].items():
        accuracy = metric["accuracy"]
        assert accuracy["low"] <= accuracy["value"] <= accuracy["high"], group
        assert accuracy["n"] == 6, group
    assert {"maj@k", "pass@k/oracle", "best_of_k/consistency", "weighted@k/consistency"} <= set(summary["curves"])
    assert set(summary["curves"]["pass@k/oracle"]) == {"1", "2", "4"}
    with Image.open(out / "scaling.png") as plot:
        assert plot.format == "PNG" and plot.size[0] > 100
    assert json.loads((out / "scaling.json").read_text()) == json.loads(json.dumps(scaling_points(summary)))
    # the log: one line per chain, our schema, each sketch a file
    lines = _lines(out)
    assert all(r["schema"] == LOG_SCHEMA for r in lines)
    assert {r["problem_id"] for r in lines} == {r["problem_id"] for r in ChainLog(out).records()}
    assert len({r["problem_id"] for r in lines}) == 6
    for record in lines:
        for step in record["chain"]["steps"]:
            if step["sketch_path"]:
                assert (out / step["sketch_path"]).is_file()
    _no_duplicate_chains(out)


def _links(page: Path) -> list[tuple[str, str]]:
    text = page.read_text()
    return re.findall(r'<(\w+)[^>]*?\b(?:src|href)="([^"]*)"', text)


def test_report_links_only_existing_files_and_sketches_are_pngs(small_run):
    out, _ = small_run
    pages = [out / "report.html", *sorted((out / "report").glob("*.html"))]
    assert len(pages) == 1 + 6
    linked, images = set(), 0
    for page in pages:
        links = _links(page)
        assert links, page
        for tag, target in links:
            assert not re.match(r"^[a-z]+:", target) and not target.startswith("/"), target  # relative, local
            path = (page.parent / target).resolve()
            assert path.is_file(), f"{page.name} links {target}, which does not exist"
            assert out.resolve() in path.parents
            linked.add(path)
            if tag == "img":
                with Image.open(path) as image:
                    assert image.format == "PNG"
                    image.load()
                images += 1
    assert images > 6  # the plot, six inputs and the chains' sketches
    assert {p.resolve() for p in pages[1:]} <= linked  # every problem page is reachable


def _blocks(lines: list[str]) -> list[list[str]]:
    blocks, current = [], None
    for line in lines:
        pid = json.loads(line)["problem_id"]
        if current is None or pid != current:
            blocks.append([])
            current = pid
        blocks[-1].append(line)
    return blocks


def test_resume_after_a_torn_log_equals_an_uninterrupted_run(small_run, tmp_path, capsys):
    reference, summary = small_run
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    for name in ("summary.json", "scaling.png", "scaling.json", "report.html"):
        (out / name).unlink()
    shutil.rmtree(out / "report")
    blocks = _blocks((out / "results.jsonl").read_text().splitlines())
    assert len(blocks) == 6
    keep = 2
    torn = blocks[keep][0][: len(blocks[keep][0]) // 2]
    (out / "results.jsonl").write_text("".join(line + "\n" for block in blocks[:keep] for line in block) + torn)
    capsys.readouterr()

    resumed = _bench(out, "--resume")
    assert f"), {keep} already done" in capsys.readouterr().out
    assert resumed["metrics"] == summary["metrics"]
    assert resumed["curves"] == summary["curves"]
    _no_duplicate_chains(out)

    def normalized(run):
        return sorted((without_timing(r) for r in _lines(run)), key=lambda r: json.dumps(r, sort_keys=True))

    assert normalized(out) == normalized(reference)


def test_resume_of_a_finished_run_does_no_work(small_run, tmp_path, capsys):
    reference, summary = small_run
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    before = (out / "results.jsonl").read_text()
    capsys.readouterr()
    resumed = _bench(out, "--resume")
    assert "6 problems (3 per size; in distribution 3,4), 6 already done" in capsys.readouterr().out
    assert (out / "results.jsonl").read_text() == before
    assert resumed["metrics"] == summary["metrics"] and resumed["curves"] == summary["curves"]


KILLED = ["bench", "maze-mcq", "--size", "3,4", "--count", "12", "--n", "1,4", "--strategy",
          "greedy,self_consistency,refine", "--error-rate", "0.4", "--policy", "simulated", "--sketcher", "oracle"]


def test_resume_after_a_real_kill_equals_an_uninterrupted_run(tmp_path, capsys):
    killed = tmp_path / "killed"
    errors = tmp_path / "stderr.txt"
    with errors.open("w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "vot", *KILLED, "--batch", "1", "--out", str(killed)],
                                   stdout=subprocess.DEVNULL, stderr=stderr, cwd=tmp_path)
    log = killed / "results.jsonl"
    deadline = time.monotonic() + 120
    try:
        while not (log.exists() and log.stat().st_size > 0):
            if process.poll() is not None:
                pytest.fail(f"the bench exited ({process.returncode}) before writing: {errors.read_text()}")
            assert time.monotonic() < deadline, "no results.jsonl line within 120 s"
            time.sleep(0.002)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL  # killed mid-run, not finished
    assert not (killed / "summary.json").exists()
    finished = {r["problem_id"] for r in ChainLog(killed).records()}
    assert len(finished) < 24

    reference = _bench(tmp_path / "reference", argv=KILLED)
    capsys.readouterr()
    resumed = _bench(killed, "--resume", argv=KILLED)
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("vot bench maze-mcq-v1: 24 problems") and f"{len(finished)} already done" in first
    assert resumed["metrics"] == reference["metrics"]
    assert resumed["curves"] == reference["curves"]
    _no_duplicate_chains(killed)
    assert len(ChainLog(killed).records()) == len(_lines(killed)) == len(_lines(tmp_path / "reference"))


@pytest.mark.parametrize("argv, message", [
    (["bench", "sokoban"], "unknown task 'sokoban'"),
    (["bench", "maze", "--strategy", "greedy,magic"], "unknown strategy 'magic'"),
    (["bench", "maze", "--sketcher", "picasso"], "unknown sketcher 'picasso'"),
    (["bench", "maze", "--policy", "psychic"], "unknown policy 'psychic'"),
    (["bench", "maze", "--encoder", "eyes"], "unrecognized arguments: --encoder eyes"),
    (["bench", "maze", "--verifier", "oracle"], "non-oracle step-level verifier"),
    (["bench", "maze", "--strategy", "dvts", "--n", "1"], "dvts cannot take n=1"),
    (["bench", "maze", "--strategy", "beam", "--n", "4,6"], "beam cannot take n=6"),
    (["bench", "maze", "--strategy", "greedy,best_of_n", "--set", "width=2"], "['width'] are not used by the chosen strategies"),
    (["bench", "maze", "--strategy", "self_consistency", "--set", "aggregate=mean"], "['aggregate'] are not used"),
    (["bench", "maze", "--strategy", "beam", "--n", "4", "--set", "bogus=1"], "['bogus'] are not used"),
    (["bench", "maze", "--strategy", "best_of_n", "--set", "aggregate=bogus"], "aggregat"),
    (["bench", "maze", "--strategy", "beam", "--n", "4", "--set", "width=0"], "width"),
    (["bench", "maze", "--strategy", "adaptive", "--n", "4", "--set", "window=0"], "window"),
    (["bench", "maze", "--strategy", "refine", "--n", "2", "--set", "rounds=-1"], "rounds"),
    (["bench", "maze", "--strategy", "refine", "--n", "2", "--set", "threshold=high"], "threshold"),
    (["bench", "maze", "--size", "99"], "size must be an integer"),
    (["bench", "maze", "--n", "0"], "chains per problem (--n) must be positive"),
    (["bench", "maze", "--n", "abc"], "chains per problem (--n) must be integers"),
    (["bench", "maze", "--count", "-1"], "--count must be a positive integer"),
    (["bench", "maze", "--count", "0"], "--count must be a positive integer"),
    (["bench", "maze", "--device", "tpu"], "device must be auto, cpu, cuda or cuda:N"),
])
def test_bad_input_fails_clearly_before_any_work(argv, message, tmp_path, capsys):
    out = tmp_path / "run"
    defaults = [flag for name, value in (("--size", "3"), ("--count", "2")) if name not in argv for flag in (name, value)]
    assert main([*argv, *defaults, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(("vot bench: error: ", "vot: error: ")) and message in err, err
    assert len(err.strip().splitlines()) == 1, err  # one line, no traceback, no usage block
    assert not out.exists()  # nothing written, nothing run


def test_a_refused_run_can_be_run_again(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["bench", "maze", "--size", "3", "--count", "1", "--policy", "simulated", "--sketcher", "oracle",
            "--strategy", "greedy", "--out", str(out)]
    assert main([*args, "--count", "-1"]) == 2
    assert not out.exists()
    assert main(args) == 0  # the refusal left nothing that blocks the next run


def test_an_out_that_is_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("mine")
    assert main(["bench", "maze", "--size", "3", "--count", "1", "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert err == f"vot bench: error: --out {target} is a file, not a run directory\n"
    assert target.read_text() == "mine"


def test_a_short_max_steps_is_raised_or_warned_about(tmp_path, capsys):
    base = ["bench", "maze", "--size", "12", "--count", "1", "--policy", "simulated", "--sketcher", "oracle",
            "--strategy", "greedy"]
    from tasks.splits import generate_split
    import tasks

    needed = len(generate_split(tasks.get("maze"), "test", 12, 1, 0)[0].actions) + 1
    assert main([*base, "--max-steps", "5", "--out", str(tmp_path / "capped")]) == 0
    assert f"warning: --max-steps 5 is below {needed}" in capsys.readouterr().out
    summary = json.loads((tmp_path / "capped" / "config.json").read_text())
    assert summary["max_steps"] == 5


def test_problems_whose_chains_hit_max_steps_still_count(tmp_path):
    summary = _bench(tmp_path / "run", argv=["bench", "maze-mcq", "--size", "4", "--count", "3", "--n", "4",
                                             "--strategy", "greedy,beam,dvts,refine,adaptive,best_of_n",
                                             "--set", "width=2", "--max-steps", "3",
                                             "--policy", "simulated", "--sketcher", "oracle"])
    assert set(summary["metrics"]) == {"greedy@1", "beam@4", "dvts@4", "refine@4", "adaptive@4", "best_of_n@4"}
    for group, metric in summary["metrics"].items():
        assert metric["accuracy"]["n"] == 3, group  # no problem drops out of a strategy's denominator
    assert len({r["problem_id"] for r in _lines(tmp_path / "run")}) == 3


def test_resume_refuses_a_directory_written_by_another_config(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["bench", "maze-mcq", "--size", "3", "--count", "2", "--n", "2", "--policy", "simulated", "--sketcher", "oracle", "--out", str(out)]
    assert main(base) == 0
    before = {name: (out / name).read_bytes() for name in ("config.json", "results.jsonl", "summary.json")}
    capsys.readouterr()
    assert main([*base, "--resume", "--error-rate", "0.1"]) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "different config" in err and "error_rate" in err
    assert main(base) == 2  # an existing run is not overwritten without --resume
    assert "already holds a run" in capsys.readouterr().err
    assert {name: (out / name).read_bytes() for name in before} == before


def test_resume_of_a_run_written_before_a_config_field_existed(small_run, tmp_path, capsys):
    """A run saved before ``--answer`` existed resumes (the field takes the value that reproduces
    it); a field that really differs is named in the refusal."""
    reference, summary = small_run
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    config = json.loads((out / "config.json").read_text())
    assert config.pop("answer") is None
    (out / "config.json").write_text(json.dumps(config))
    assert _bench(out, "--resume")["metrics"] == summary["metrics"]
    config["invented"] = 1
    (out / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    assert main([*SMALL, "--out", str(out), "--resume"]) == 2
    assert "differs in ['invented']" in capsys.readouterr().err


def test_vot_show_prints_a_chain(small_run, capsys):
    out, _ = small_run
    records = ChainLog(out).records()
    first = records[0]["problem_id"]
    capsys.readouterr()
    assert main(["show", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"problem {first}")
    assert "-- greedy@1 chain 0" in text and "Go " in text and "The answer is" in text and "[sketches/" in text
    other = records[-1]["problem_id"]
    assert main(["show", str(out), "--problem", other, "--strategy", "beam@2"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"problem {other}") and "-- beam@2 chain" in text and "greedy@1" not in text


def test_vot_show_errors_clearly(small_run, tmp_path, capsys):
    out, _ = small_run
    assert main(["show", str(out), "--problem", "maze-mcq-v0/test/s9/seed1/00042"]) == 2
    err = capsys.readouterr().err
    assert "vot show: error: problem 'maze-mcq-v0/test/s9/seed1/00042' is not in" in err
    assert main(["show", str(tmp_path / "empty")]) == 2
    assert "has no results.jsonl" in capsys.readouterr().err
    assert not (tmp_path / "empty").exists()  # showing is read-only
    assert main(["show", str(out), "--strategy", "nope@3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vot show: error: --strategy 'nope@3' is not in this run; its groups are pool@4, ")
    assert len(err.splitlines()) == 1


def test_planning_runs_report_progress_and_invalid_moves(tmp_path):
    """Navigation groups carry VPRL's metrics, recomputed here from the logged answers."""
    import tasks
    from vot.data import read_problems

    out = tmp_path / "nav"
    summary = _bench(out, argv=["bench", "frozenlake-nav-v0", "--size", "3,4", "--count", "4", "--strategy", "greedy",
                                "--error-rate", "0.6", "--policy", "simulated", "--sketcher", "oracle", "--seed", "2"])
    planning = summary["metrics"]["greedy@1"]["planning"]
    task = tasks.get("frozenlake-nav-v0")
    problems = {p.id: p for p in read_problems(out / "problems.jsonl")}
    scores = [task.check(problems[r["problem_id"]], r["result"]["answer"] or "") for r in _lines(out) if r["selected"]]
    assert len(scores) == 8
    assert planning["progress_rate"] == pytest.approx(sum(s.progress for s in scores) / 8)
    assert planning["invalid"]["value"] == pytest.approx(sum(not s.valid for s in scores) / 8)
    assert planning["reached"]["value"] == pytest.approx(sum(bool(s.reached) for s in scores) / 8)
    failures = [s for s in scores if not s.correct]
    assert failures and planning["invalid_among_failures"]["n"] == len(failures)
    assert "maze-mcq" not in summary["config"]["task"] and "planning" not in _bench(
        tmp_path / "mcq", argv=SMALL[:2] + ["--size", "3", "--count", "2", "--strategy", "greedy", "--policy", "simulated",
                                             "--sketcher", "oracle"])["metrics"]["greedy@1"]


def test_a_search_run_alone_reports_compute_relative_to_its_first_strategy_at_its_lowest_n(tmp_path):
    from vot.bench import BenchConfig, run_bench

    summary = run_bench(BenchConfig(task="maze-nav-v1", policy="simulated", sketcher="oracle", strategies=["refine", "beam"],
                                    n=[2, 4], sizes=[3], count=4, settings={"width": 2},
                                    out=str(tmp_path / "run")), progress=False)
    compute = summary["compute"]
    assert compute["unit"] == "refine@2" and compute["groups"]["refine@2"]["relative"] == 1.0
    assert compute["groups"]["refine@4"]["relative"] > 1.0
    assert compute["groups"]["beam@2"]["relative"] < 1.0  # the unit is not the cheapest group: a fixed rule, not timings
