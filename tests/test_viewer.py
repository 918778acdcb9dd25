"""The notebook viewer: chain HTML, step strips, disagreement marks and the ChainViewer widget."""
import base64
import html
import io
import re
import subprocess
import sys

import numpy as np
import pytest
from markupsafe import escape
from PIL import Image

import tasks
from tasks.splits import generate_split
from vot.bench import BenchConfig, run_bench
from vot.chain import Chain
from vot.components import build_reasoner
from tasks.parsing import action_sentence
from vot.verifiers import ConsistencyVerifier
from vot.viewer import (
    PANEL, TEXT_WIDTH, ChainViewer, chain_html, consistency_checks, first_disagreement, input_strip, load_run,
    problem_from_id, step_strip,
)


@pytest.fixture(scope="module")
def maze_chains():
    """Problem + three chains of a 4x4 maze: one from a policy that never errs, two sampled."""
    problem = generate_split("maze-mcq-v0", "test", 4, 1, 0)[0]
    exact = build_reasoner("maze-mcq-v0", policy="simulated", sketcher="oracle", error_rate=0.0).run([problem], 1)[0]
    sampled = build_reasoner("maze-mcq-v0", policy="simulated", sketcher="oracle", error_rate=0.5).run([problem], 2)[0]
    return problem, exact[0], sampled


def _copy(chain: Chain) -> Chain:
    return chain.fork()


def _data_uris(text: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', text)


def _decode(uri: str) -> Image.Image:
    assert uri.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB")


def test_chain_html_has_every_thought_and_inlines_sketches_as_data_uris(maze_chains):
    problem, chain, _ = maze_chains
    text = chain_html(chain)
    for step in chain.steps:
        assert html.escape(step.thought) in text
    uris = _data_uris(text)
    assert len(uris) == len(chain.sketches) > 0
    for uri, sketch in zip(uris, chain.sketches):
        assert np.array_equal(np.asarray(_decode(uri)), np.asarray(sketch))
    with_problem = chain_html(chain, problem)
    assert len(_data_uris(with_problem)) == len(chain.sketches) + 1  # the input image too
    assert "correct" in with_problem and "first disagreement" not in with_problem
    assert "sketches/" not in text  # nothing refers to files


def test_chain_html_escapes_thoughts_and_answer(maze_chains):
    _, chain, _ = maze_chains
    evil = _copy(chain)
    evil.steps[0].thought = '<script>alert("x")</script> & Go down.'
    evil.answer = "<b>A</b>"
    text = chain_html(evil)
    assert "<script>" not in text and "<b>A</b>" not in text
    assert str(escape(evil.steps[0].thought)) in text and "&lt;b&gt;A&lt;/b&gt;" in text  # jinja2's escaping


def test_step_strip_is_one_rgb_size_for_every_step(maze_chains):
    problem, chain, sampled = maze_chains
    sizes = set()
    for c in (chain, *sampled):
        for i in range(len(c.steps)):
            strip = step_strip(c, i, "maze-mcq-v0")
            assert strip.mode == "RGB"
            sizes.add(strip.size)
    assert len(sizes) == 1
    width, height = sizes.pop()
    assert height >= PANEL and width >= 2 * PANEL
    assert input_strip(problem).size == (width, height)
    assert step_strip(chain, -1, tasks.get("maze-mcq-v0")).size == (width, height)  # answer step: no sketch
    with pytest.raises(IndexError, match="out of range"):
        step_strip(chain, len(chain.steps), "maze-mcq-v0")


def test_step_strip_shows_the_read_back_state_or_unreadable(maze_chains):
    _, chain, _ = maze_chains
    task = tasks.get("maze-mcq-v0")
    read_x = TEXT_WIDTH + 4 + PANEL + 4  # text | sketch | read back | scores, 4 px apart
    readable = np.asarray(step_strip(chain, 0, task))
    read_panel = readable[4:4 + PANEL, read_x:read_x + PANEL]
    assert (read_panel == 0).any()  # walls of the re-rendered maze
    broken = _copy(chain)
    blank = Image.new("RGB", chain.steps[0].sketch.size, (255, 255, 255))  # no agent: task.read raises
    broken.steps[0].sketch = blank
    with pytest.raises(ValueError):
        task.read(blank)
    strip = step_strip(broken, 0, task)
    grey = np.asarray(strip)[4 + PANEL // 4, read_x + 2]  # inside the read-back panel
    assert tuple(grey) == (235, 235, 235)
    odd = _copy(chain)
    odd.steps[0].sketch = Image.new("RGB", (13, 7))  # not a grid image at all
    assert step_strip(odd, 0, task).size == strip.size
    assert "unreadable" in chain_html(broken)


def test_first_disagreement_finds_the_corrupted_sketch(maze_chains):
    problem, chain, _ = maze_chains
    assert first_disagreement(chain, problem) is None  # a policy that never errs, oracle sketches
    corrupted = _copy(chain)
    assert len(corrupted.sketches) >= 3
    corrupted.steps[2].sketch = corrupted.steps[1].sketch  # the third sketch shows no move
    assert first_disagreement(corrupted, problem) == 2
    text = chain_html(corrupted, problem)
    rows = text.split("<tr")
    assert "background:#fdd" in rows[4] and "background:#fdd" not in "".join(rows[:4])  # header row, then steps 1-3
    assert "first disagreement: step 3" in text
    viewer = ChainViewer([chain, corrupted], problem)
    assert viewer.disagreements == [None, 2]
    highlighted = np.asarray(viewer.strip(1, 3))
    assert tuple(highlighted[0, 0]) == (200, 0, 0)  # red frame on the disagreeing step
    assert tuple(np.asarray(viewer.strip(1, 2))[0, 0]) == (255, 255, 255)
    assert "first disagreement: step 3" in viewer.headers[1].value


def test_rejected_steps_name_the_rule_they_break(maze_chains):
    problem, chain, sampled = maze_chains
    verifier = ConsistencyVerifier()
    for c in (chain, *sampled):  # one home for the rules: a reason exactly where the score is 0
        assert [r is None for r in verifier.step_checks(problem, c)] == [s == 1.0 for s in verifier.step_scores(problem, c)]
    corrupted = _copy(chain)
    corrupted.steps[2].sketch = corrupted.steps[1].sketch  # the third sketch shows no move
    checks = consistency_checks(corrupted, problem)
    assert checks[:2] == [None, None] and checks[2].startswith("the sketch reads as 'Now at row")
    off = _copy(chain)
    off.steps[0].thought = "Go sideways."
    assert consistency_checks(off, problem)[0] == "the thought names no action"
    text = chain_html(corrupted, problem)
    assert str(escape(checks[2])) in text
    assert f"<td>3</td>\n<td>3: {action_sentence(problem.actions[2])}</td>" in text  # step number beside the stated action


def test_problem_from_id_rebuilds_split_problems():
    problems = generate_split("frozenlake-mcq-v0", "test", 3, 4, 1)
    for problem in problems[::-1]:
        assert problem_from_id(problem.id).dumps() == problem.dumps()
    with pytest.raises(ValueError, match="not a split id"):
        problem_from_id("maze-mcq-v0/00001")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("viewer") / "run"
    run_bench(BenchConfig(task="maze-mcq-v0", policy="simulated", sketcher="oracle", sizes=[3], count=2,
                          n=[1, 2], out=str(out)), progress=False)
    return out


def test_chain_viewer_from_a_bench_run_directory(run_dir):
    viewer = ChainViewer.from_run_dir(run_dir)
    problem = generate_split("maze-mcq-v0", "test", 3, 1, 0)[0]
    assert viewer.problem.id == problem.id and viewer.problem.dumps() == problem.dumps()
    assert len(viewer.chains) == 2  # the pool of N_max = 2 chains
    steps = max(len(c.steps) for c in viewer.chains)
    assert viewer.slider.max == viewer.steps == steps and viewer.slider.min == 0
    assert viewer.play.max == steps
    for chain in viewer.chains:
        assert all(s.sketch is not None for s in chain.steps if not s.is_answer)  # loaded from the PNG files
    viewer.play.value = 3  # the play button drives the slider (and the cards)
    assert viewer.slider.value == 3
    shown = viewer.images[0].value
    assert Image.open(io.BytesIO(shown)).size == viewer.strip(0, 3).size
    viewer.show(0)
    assert viewer.images[0].value != shown
    assert viewer.image(steps).height == 2 * viewer.strip(0, steps).height
    with pytest.raises(ValueError):
        viewer.show(steps + 1)
    bundle = viewer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_load_run_picks_groups_and_problems(run_dir):
    second = generate_split("maze-mcq-v0", "test", 3, 2, 0)[1].id
    problem, group, records, chains = load_run(run_dir, second, "greedy@1")
    assert problem.id == second and group == "greedy@1" and len(chains) == 1
    assert records[0].strategy == "greedy" and records[0].selected and chains[0].problem_id == second
    viewer = ChainViewer.from_run_dir(run_dir, problem_id=second, group="greedy@1")
    assert viewer.slider.max == len(chains[0].steps)
    with pytest.raises(ValueError, match="greedy@1, pool@2|pool@2, greedy@1"):
        load_run(run_dir, second, "beam@4")
    with pytest.raises(ValueError, match="not in"):
        load_run(run_dir, "maze-mcq-v0/test/s3/seed0/00009")
    with pytest.raises(ValueError, match="no results.jsonl"):
        load_run(run_dir / "missing")
    assert not (run_dir / "missing").exists()


def test_viewer_module_imports_without_ipywidgets():
    code = (
        "import sys; sys.modules['ipywidgets'] = None\n"
        "import vot.viewer\n"
        "assert callable(vot.viewer.chain_html) and callable(vot.viewer.step_strip)\n"
        "try:\n    vot.viewer.ChainViewer([])\nexcept ImportError:\n    print('no widgets')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "no widgets"
