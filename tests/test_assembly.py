"""One assembly path: `vot.load`, `build_reasoner` and `vot bench` build the same reasoner from a
bundle (its relative sketcher path, its max_steps and sampling), and the policy owns its encoder."""
import json
import shutil

import pytest
import torch

import tasks
import vot
from imagegen import PRETRAINED
from tasks.splits import generate_split
from vot.bundle import resolve
from vot.cli import main
from vot.components import build_reasoner, resolve_device


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """The shipped maze bundle, with its sketcher inside the bundle (a relative path), a short
    max_steps and a sampling temperature of its own."""
    out = tmp_path_factory.mktemp("bundle") / "maze-own"
    shutil.copytree(resolve("maze"), out)
    shutil.copytree(PRETRAINED / "maze", out / "my-sketcher")
    spec = json.loads((out / "bundle.json").read_text())
    spec |= {"sketcher": "my-sketcher", "max_steps": 7, "sketch_steps": 3, "sampling": {"temperature": 0.7, "top_p": 0.9}}
    (out / "bundle.json").write_text(json.dumps(spec))
    return out


def _same_setup(a, b):
    assert a.max_steps == b.max_steps and a.sketch_steps == b.sketch_steps and a.seed == b.seed
    assert a.sketcher.name_or_path == b.sketcher.name_or_path
    assert (a.policy.temperature, a.policy.top_p) == (b.policy.temperature, b.policy.top_p)
    assert a.attention_backend == b.attention_backend


def test_load_and_build_reasoner_read_a_bundle_alike(bundle):
    loaded = vot.load(bundle, seed=3)
    built = build_reasoner("maze-mcq-v0", policy=str(bundle), seed=3)
    _same_setup(loaded, built)
    assert loaded.max_steps == 7 and loaded.sketch_steps == 3
    assert str(loaded.sketcher.name_or_path) == str(bundle / "my-sketcher")
    assert (loaded.policy.temperature, loaded.policy.top_p) == (0.7, 0.9)
    problem = generate_split("maze-mcq-v0", "test", 3, 1)[0]
    assert [c.thoughts for c in loaded.run([problem], 2)[0]] == [c.thoughts for c in built.run([problem], 2)[0]]


def test_overrides_win_over_the_bundle(bundle):
    reasoner = vot.load(bundle, sketcher="oracle", max_steps=9, temperature=0.0, sketch_steps=1)
    assert reasoner.max_steps == 9 and reasoner.sketch_steps == 1 and reasoner.policy.temperature == 0.0
    assert reasoner.sketcher.label == "oracle" and reasoner.attention_backend == "n/a (no diffusion model)"


def test_bench_honours_the_bundle_and_raises_a_short_budget(bundle, tmp_path, capsys):
    problems = generate_split("maze", "test", 3, 2)  # the short name: the current version, as the bench takes it
    needed = max(len(p.actions) for p in problems) + 1
    out = tmp_path / "run"
    assert main(["bench", "maze", "--policy", str(bundle), "--size", "3", "--count", "2", "--n", "1",
                 "--strategy", "greedy", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    first = printed.splitlines()[0]
    assert f"bundle {bundle}" in first and "sketcher" in first and "my-sketcher" in first
    assert "in distribution 3" in first
    config = json.loads((out / "config.json").read_text())
    if needed > 7:
        assert config["max_steps"] == needed and f"max_steps raised from 7 to {needed}" in printed
    else:
        assert config["max_steps"] == 7
    assert f"vot show {out}" in printed.splitlines()[-1] and "report.html" in printed.splitlines()[-1]


def test_the_policy_owns_its_encoder():
    reference = build_reasoner("maze-mcq-v0", policy="simulated", sketcher="oracle")
    learned = vot.load("maze", sketcher="oracle")
    assert reference.encoder is None and learned.encoder is learned.policy.encoder is not None
    problem = generate_split("maze-mcq-v0", "test", 3, 1)[0]
    [simulated] = reference.run([problem], 1)[0]
    [small] = learned.run([problem], 1, greedy=True)[0]
    assert simulated.compute.encoder_calls == 0 < simulated.compute.sketches  # no unused vision tokens counted
    assert small.compute.encoder_calls == small.compute.sketches > 0


def test_a_text_only_policy_reasons_without_sketches(tmp_path):
    from vot.bundle import make_bundle
    from vot.lm.model import PolicyModel, PolicyShape, PolicySpec
    from vot.lm.sequences import corpus
    from vot.lm.tokenizer import WordTokenizer

    problems = generate_split("maze-mcq-v0", "train", 3, 4)
    tiny = PolicyShape(hidden=32, layers=2, heads=2, kv_heads=1, vision_hidden=16, vision_layers=1, vision_heads=2)
    PolicyModel(PolicySpec("maze-mcq-v0", "cot", tiny), WordTokenizer.train(corpus(problems))).save_pretrained(tmp_path / "cot")
    bundle = make_bundle(tmp_path / "cot", tmp_path / "cot-bundle")
    for reasoner in (vot.load(bundle), build_reasoner("maze-mcq-v0", policy=str(tmp_path / "cot"), sketcher="blank")):
        assert reasoner.sketcher.label == "blank"
    with pytest.raises(ValueError, match=r"reasons in text \(cot\); it takes the blank sketcher, not 'oracle'"):
        vot.load(bundle, sketcher="oracle")


@pytest.mark.parametrize("device, message", [("tpu", "device must be auto, cpu, cuda or cuda:N"),
                                             ("cuda:0", "no CUDA device is available"),
                                             ("cuda:x", "device must be")])
def test_bad_devices_are_refused(device, message):
    if torch.cuda.is_available() and device == "cuda:0":
        assert resolve_device(device) == "cuda:0"
        return
    with pytest.raises(ValueError, match=message):
        resolve_device(device)


def test_devices_resolve():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")


def test_a_bundle_for_another_task_is_refused(bundle):
    with pytest.raises(ValueError, match="is for maze-mcq-v1, not frozenlake-mcq-v0"):
        build_reasoner("frozenlake-mcq-v0", policy=str(bundle))
    with pytest.raises(ValueError, match="name the task"):
        build_reasoner(policy="simulated")


def test_sketch_pipeline_imports_from_the_package():
    from imagegen import SketchPipeline
    from imagegen.pipeline import SketchPipeline as Direct

    assert SketchPipeline is Direct
    with pytest.raises(ImportError, match="Nope"):
        from imagegen import Nope  # noqa: F401


def test_a_v0_policy_answers_v1_problems_of_its_family(tmp_path, capsys):
    reasoner = build_reasoner("maze-mcq-v1", policy=str(resolve("maze-mcq-v0")), sketcher="oracle")
    problem = generate_split("maze-mcq-v1", "test", 3, 1)[0]
    assert reasoner.run([problem], 1, greedy=True)[0][0].finished
    out = tmp_path / "run"
    assert main(["bench", "frozenlake-mcq-v1", "--policy", str(resolve("maze-mcq-v0")), "--size", "3", "--count", "1",
                 "--out", str(out)]) == 2
    assert "is for maze-mcq-v0, not frozenlake-mcq-v1" in capsys.readouterr().err
    assert not out.exists()  # refused before anything is written


def test_shipped_bundles_resolve_by_task_name_to_the_current_version_or_its_family():
    from vot.bundle import read_spec, shipped

    names = shipped()
    assert read_spec(resolve("frozenlake")).task == read_spec(resolve("frozenlake-mcq")).task == "frozenlake-mcq-v1"
    assert read_spec(resolve("frozenlake-mcq-v0")).task == "frozenlake-mcq-v0"
    assert resolve("maze-mcq-v0") == names["maze-mcq-v0"]
    for short in ("maze", "minibehavior"):  # the family's newest bundle answers the current version's problems
        task = tasks.get(short).id
        assert tasks.registry.family(read_spec(resolve(short)).task) == tasks.registry.family(task)
    assert resolve("frozenlake-nav") == names["frozenlake-nav"]
    assert resolve("maze-nav") == resolve("maze-nav-v0") == resolve("maze-nav-v1") == names["maze-nav"]
    assert read_spec(names["maze-nav"]).task == "maze-nav-v1"
    assert resolve("minibehavior-nav") == resolve("minibehavior-nav-v1") == names["minibehavior-nav"]
    assert read_spec(names["minibehavior-nav"]).task == "minibehavior-nav-v1"
