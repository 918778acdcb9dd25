"""The typed run record (`vot.run.read_run`), ``problems.jsonl`` in the run directory, and the
report a researcher reads: accuracy by size in and out of distribution, pass@k, which chain each
strategy selected and why, stated actions beside step numbers, rejected steps' rules, escaping."""
import json
import re
import shutil
from pathlib import Path

import pytest

import tasks
import vot.bench
from tasks.parsing import action_sentence
from tasks.splits import generate_split
from vot.bench import BenchConfig, run_bench
from vot.chain import Chain
from vot.cli import main
from vot.explain import selections
from vot.report import series_styles, write_report
from vot.run import ChainRecord, read_run
from vot.show import show_run
from vot.viewer import ChainViewer, load_run

ARGS = ["bench", "maze-mcq", "--size", "3,7", "--count", "2", "--n", "2,4", "--seed", "1", "--error-rate", "0.4",
        "--strategy", "greedy,best_of_n,weighted_best_of_n,self_consistency,refine", "--policy", "simulated",
        "--sketcher", "oracle"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A small run with an in-distribution (3) and an out-of-distribution (7) size."""
    out = tmp_path_factory.mktemp("run") / "run"
    assert main([*ARGS, "--out", str(out)]) == 0
    return out


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def _page(out: Path, problem_id: str) -> str:
    return (out / "report" / f"{problem_id.replace('/', '_')}.html").read_text()


def test_read_run_round_trips_a_bench_run(run_dir):
    run = read_run(run_dir)
    assert run.config == json.loads((run_dir / "config.json").read_text())
    assert run.summary == json.loads((run_dir / "summary.json").read_text())
    expected = [p for size in (3, 7) for p in generate_split("maze", "test", size, 2, 1)]  # the short name: v1
    assert [e.problem.dumps() for e in run.problems] == [p.dumps() for p in expected]
    lines = _lines(run_dir)
    assert [r.to_json() for r in run.records] == [{k: v for k, v in line.items() if k not in ("schema", "block")}
                                                  for line in lines]
    assert all(ChainRecord.from_json(r.to_json()) == r for r in run.records)
    entry = run.problems[0]
    assert list(entry.groups()) == ["pool@4", "greedy@1", "refine@2", "refine@4"]
    assert entry.result("greedy@1").chains_used == 1 and entry.result("pool@4") is None
    pool = entry.groups()["pool@4"]
    assert all(set(r.chain_scores) == {"consistency", "confidence"} and r.result is None for r in pool)
    assert isinstance(pool[0].chain, Chain) and pool[0].chain.steps[0].sketch is None  # sketches stay on disk
    sketched = run.sketched(pool[0])
    assert sketched.steps[0].sketch is not None and sketched.steps[0].sketch.size == expected[0].image.size
    with pytest.raises(ValueError, match="is not in"):
        run.problem("maze-mcq-v0/test/s3/seed1/00009")
    with pytest.raises(ValueError, match="no results.jsonl"):
        read_run(run_dir / "missing")


def test_an_old_run_dir_without_problems_jsonl_still_loads(run_dir, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    (old / "problems.jsonl").unlink()
    shutil.rmtree(old / "report")
    for entry in read_run(run_dir).problems:  # and its input images, as runs before them had none either
        (old / "sketches" / entry.id.replace("/", "_") / "input.png").unlink()
    now, before = read_run(run_dir), read_run(old)
    assert [e.problem.dumps() for e in before.problems] == [e.problem.dumps() for e in now.problems]  # re-generated
    assert [r.to_json() for r in before.records] == [r.to_json() for r in now.records]
    problem, group, records, chains = load_run(old)
    assert group == "pool@4" and problem.id == now.problems[0].id and chains[0].steps[0].sketch is not None
    assert show_run(old) == show_run(run_dir)
    write_report(before)
    assert (old / "report.html").read_text().count("<tr>") == (run_dir / "report.html").read_text().count("<tr>")


def test_problems_jsonl_is_written_and_checked_on_resume(run_dir, tmp_path, capsys):
    lines = (run_dir / "problems.jsonl").read_text().splitlines()
    assert len(lines) == 4
    for line in lines:
        assert (run_dir / json.loads(line)["image"]).is_file()  # the report's input image
    out = tmp_path / "resumed"
    shutil.copytree(run_dir, out)
    assert main([*ARGS, "--out", str(out), "--resume"]) == 0
    assert (out / "problems.jsonl").read_text() == (run_dir / "problems.jsonl").read_text()
    record = json.loads(lines[0]) | {"answer": "B" if json.loads(lines[0])["answer"] != "B" else "C"}
    (out / "problems.jsonl").write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n")
    capsys.readouterr()
    assert main([*ARGS, "--out", str(out), "--resume"]) == 2
    assert "holds other problems" in capsys.readouterr().err


def test_a_bench_run_on_externally_built_problems_can_be_viewed(tmp_path, monkeypatch):
    lake = tasks.get("frozenlake-mcq-v0")
    built = [lake.from_layout(["SFF", "FHF", "FFG"], ["right", "right", "down", "down"]),
             lake.from_layout(["SFF", "FHF", "FFG"], ["down", "right"])]
    assert all("/content/" in p.id for p in built)  # not split ids: nothing could re-generate them
    monkeypatch.setattr(vot.bench, "generate_split", lambda task, split, size, count, seed: built)
    out = tmp_path / "lake"
    run_bench(BenchConfig(task="frozenlake-mcq-v0", policy="simulated", sketcher="oracle", sizes=[3], count=2,
                          n=[2], strategies=["greedy", "best_of_n"], out=str(out)), progress=False)
    run = read_run(out)
    assert [e.problem.dumps() for e in run.problems] == [p.dumps() for p in built]
    problem, group, _, chains = load_run(out, built[1].id, "greedy@1")
    assert problem.dumps() == built[1].dumps() and len(chains) == 1
    viewer = ChainViewer.from_run_dir(out, built[1].id)
    assert viewer.problem.dumps() == built[1].dumps()
    assert "gold answer" in _page(out, built[1].id)


def test_the_report_has_accuracy_by_size_in_and_out_of_distribution_and_pass_at_k(run_dir):
    text = (run_dir / "report.html").read_text()
    table = text[text.index('<table class="accuracy">'):]
    table = table[:table.index("</table>")]
    assert '<th colspan="1">in distribution</th><th colspan="1">out of distribution</th>' in table
    assert "<th>size 3</th><th>size 7</th>" in table
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = {re.search(r"<td>([^<]+)</td>", row).group(1): row for row in table.split("<tr")[3:]}
    assert set(rows) == set(summary["metrics"]) | {"pass@1 (oracle)", "pass@2 (oracle)", "pass@4 (oracle)"}
    greedy = summary["metrics"]["greedy@1"]
    assert set(greedy["by_distribution"]) == {"in_distribution", "out_of_distribution"}
    assert set(summary["metrics"]["best_of_n@2"]["by_size"]) == {"3", "7"}  # sampled groups have sizes too
    for size in ("3", "7"):
        assert f"{100 * greedy['by_size'][size]['value']:.1f}%" in rows["greedy@1"]
        passk = summary["curves_by_size"][size]["pass@k/oracle"]["4"]
        assert f"{100 * passk['value']:.1f}% <small>[{100 * passk['low']:.1f}%" in rows["pass@4 (oracle)"]
    assert rows["pass@4 (oracle)"].startswith(' class="oracle"')


def test_each_problem_page_says_what_each_strategy_selected_and_why(run_dir):
    run = read_run(run_dir)
    reasons = 0
    for entry in run.finished:
        page = _page(run_dir, entry.id)
        why = page[page.index("What each strategy selected, and why"):]
        why = why[:why.index("</table>")]
        picked = selections(run, entry)
        assert [s.group for s in picked] == ["greedy@1", "refine@2", "refine@4", "best_of_n@4",
                                             "weighted_best_of_n@4", "self_consistency@4"]
        for selection in picked:
            assert f"<td>{selection.group}</td>" in why
            assert selection.reason.replace("'", "&#39;") in why
        assert "majority vote:" in why and "highest consistency score" in why and "summed consistency score" in why
        best = next(s for s in picked if s.group == "best_of_n@4")
        scores = [r.chain_scores["consistency"] for r in entry.groups()["pool@4"]]
        assert best.record.chain_scores["consistency"] == max(scores)  # the best chain, by its recorded score
        assert f"picked by best_of_n@4" in page
        # the greedy chain's scores, computed for display (the run scores no greedy step)
        greedy = page[page.index("<h3>greedy@1"):]
        assert re.search(r"consistency \d\.\d\d, confidence \d\.\d\d <small>\(min over steps", greedy[:800])
        # stated actions beside the step numbers
        first = action_sentence(entry.problem.actions[0])
        assert f"<td>1</td>\n<td>1: {first}</td>" in page
        reasons += page.count("the problem states") + page.count("the sketch reads as")
    assert reasons > 0  # rejected steps say which rule they broke


def test_the_report_escapes_problem_text_and_chains(run_dir, tmp_path):
    out = tmp_path / "evil"
    shutil.copytree(run_dir, out)
    lines = (out / "problems.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["prompt"] = '<script>alert("prompt")</script> ' + first["prompt"]
    (out / "problems.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    records = _lines(out)
    records[0]["chain"]["steps"][0]["thought"] = "<img src=x onerror=alert(1)> Go up."
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    write_report(read_run(out))
    page = _page(out, first["id"])
    assert "<script>" not in page and "&lt;script&gt;alert(&#34;prompt&#34;)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt; Go up." in page


def test_coinciding_scaling_curves_get_distinct_styles():
    names = ["greedy", "best_of_n", "weighted_best_of_n", "self_consistency", "refine", "pass@k (oracle)"]
    styles = series_styles(names)
    looks = {(s["marker"], s["linestyle"], s["fillstyle"], s["color"]) for s in styles.values()}
    assert len(looks) == len(names)
    shifts = [s["shift"] for s in styles.values()]
    assert len(set(shifts)) == len(names) and all(0.9 < s < 1.1 for s in shifts)
    assert styles["pass@k (oracle)"]["color"] == "black"


def test_summary_splits_accuracy_by_stated_action_length(run_dir):
    from tasks.metrics import length_bin

    summary = json.loads((run_dir / "summary.json").read_text())
    run = read_run(run_dir)
    expected: dict = {}
    for record in run.records:
        if record.strategy == "greedy" and record.result is not None:
            actions = next(e.problem.actions for e in run.problems if e.problem.id == record.problem_id)
            expected.setdefault(length_bin(len(actions)), []).append(record.correct)
    by_length = summary["metrics"]["greedy@1"]["by_length"]
    assert {k: v["n"] for k, v in by_length.items()} == {k: len(v) for k, v in expected.items()}
    assert {k: round(v["value"] * v["n"]) for k, v in by_length.items()} == {k: sum(v) for k, v in expected.items()}
