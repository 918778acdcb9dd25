import json
import subprocess
import sys

import pytest

from vot.cli import main
from vot.data import read_problems


def test_vot_tasks_lists_every_task(capsys):
    import tasks

    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    for name in tasks.names():
        assert name in out


@pytest.mark.parametrize("extra, message", [(["--count", "0"], "--count must be a positive integer"),
                                            (["--count", "-2"], "--count must be a positive integer"),
                                            (["--size", "99"], "size")])
def test_vot_data_refuses_bad_input_and_writes_nothing(extra, message, tmp_path, capsys):
    out = tmp_path / "problems"
    args = {"--size": "3", "--count": "2"} | dict(zip(extra[::2], extra[1::2]))
    assert main(["data", "maze", *[x for kv in args.items() for x in kv], "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vot data: error: ") and message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_vot_data_refuses_an_out_that_is_a_file_or_already_has_problems(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("mine")
    assert main(["data", "maze", "--size", "3", "--count", "1", "--out", str(taken)]) == 2
    assert capsys.readouterr().err == f"vot data: error: --out {taken} is a file, not a directory\n"
    assert taken.read_text() == "mine"
    assert main(["data", "maze", "--size", "3", "--count", "1", "--out", str(tmp_path / "d")]) == 0
    before = (tmp_path / "d" / "problems.jsonl").read_text()
    assert main(["data", "maze", "--size", "4", "--count", "1", "--out", str(tmp_path / "d")]) == 2
    assert "exists; choose another --out" in capsys.readouterr().err
    assert (tmp_path / "d" / "problems.jsonl").read_text() == before


def test_vot_data_writes_jsonl_and_pngs(tmp_path):
    assert main(["data", "maze-mcq-v0", "--split", "test", "--size", "3,5", "--count", "4", "--seed", "2", "--out", str(tmp_path)]) == 0
    lines = (tmp_path / "problems.jsonl").read_text().splitlines()
    assert len(lines) == 8
    records = [json.loads(line) for line in lines]
    assert {r["meta"]["size"] for r in records} == {3, 5}
    for record in records:
        assert (tmp_path / record["image"]).is_file()
        assert set(record) >= {"schema", "id", "task", "prompt", "state", "answer", "options", "actions", "meta", "image"}
    problems = read_problems(tmp_path / "problems.jsonl")
    from PIL import Image

    import numpy as np

    assert np.array_equal(np.asarray(Image.open(tmp_path / records[0]["image"])), np.asarray(problems[0].image))


def test_vot_bench_with_an_error_free_simulated_policy_scores_100(tmp_path, capsys):
    argv = ["bench", "frozenlake-mcq", "--size", "3", "--count", "10", "--n", "1,2", "--error-rate", "0", "--policy", "simulated", "--sketcher", "oracle", "--out", str(tmp_path),
            "--strategy", "greedy,best_of_n,weighted_best_of_n,self_consistency"]
    assert main(argv) == 0
    assert "REFERENCE components: oracle, simulated" in capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["metrics"]["greedy@1"]["accuracy"]["value"] == 1.0
    assert summary["metrics"]["self_consistency@2"]["accuracy"]["value"] == 1.0
    assert summary["reference_components"] == ["oracle", "simulated"]
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == 10 * (1 + 2)  # a greedy chain and a pool of 2 per problem


@pytest.mark.parametrize(
    "argv, message",
    [
        (["bench", "sokoban"], "unknown task 'sokoban'; registered tasks:"),
        (["bench", "maze", "--policy", "psychic"], "unknown policy"),
        (["bench", "maze", "--sketcher", "crayons"], "unknown sketcher"),
        (["bench", "maze", "--size", "99"], "size must be an integer"),
        (["data", "maze-nav", "--size", "2", "--count", "500", "--out", "unused"], "distinct test problems"),
    ],
)
def test_bad_input_fails_clearly(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_console_script_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "vot", "tasks"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "maze-mcq-v0" in result.stdout
