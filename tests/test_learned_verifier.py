"""The learned verifier: a tiny random model round-trips through save/load, scores one P per step,
learns a tiny synthetic batch; the shipped one loads by name; the trainer runs end to end."""
import json

import pytest
import torch
import torch.nn.functional as F

import tasks
from tasks.splits import generate_split
from vision_encoder.patch import PatchEncoder, vision_config
from vot.chain import Chain, Step
from vot.learned_verifier import (LearnedVerifier, VerifierConfig, VerifierModel, collate, encoder_fingerprint,
                                  load_parts, save_verifier, shipped_dir, step_examples)
from vot.lm.tokenizer import WordTokenizer
from vot.verifiers import VERIFIERS, get_verifier

TASK = "maze-mcq-v0"


@pytest.fixture(scope="module")
def parts():
    task = tasks.get(TASK)
    problems = generate_split(task, "train", 3, 3, seed=0)
    tokenizer = WordTokenizer.train([p.prompt for p in problems] + ["Go up. Go down. Go left. Go right. The answer is A B C D."])
    torch.manual_seed(0)  # the encoder's own init (transformers); the verifier's init takes a generator
    encoder = PatchEncoder(vision_config("vit", hidden_size=16, layers=1, heads=2, patch_size=8), dim=8, pad=True).eval()
    config = VerifierConfig(task=TASK, bundle="maze-mcq", vocab_size=len(tokenizer), vision_dim=8,
                            encoder_sha256=encoder_fingerprint(encoder), width=16, layers=1, heads=2)
    model = VerifierModel(config).init_weights(torch.Generator().manual_seed(0)).eval()
    return task, problems, tokenizer, encoder, model


def gold_chain(task, problem, wrong: bool = False) -> Chain:
    """A chain that follows the gold trace (rendered states as sketches); ``wrong`` flips its first thought."""
    state, steps = task.initial_state(problem), []
    for k, action in enumerate(problem.actions):
        state = task.step(state, action)
        thought = f"Go {action}."
        if wrong and k == 0:
            thought = "Go left." if action != "left" else "Go right."
        steps.append(Step(thought, sketch=task.render(state)))
    steps.append(Step(f"The answer is {problem.answer}.", is_answer=True))
    return Chain(problem.id, problem.task, steps=steps, answer=steps[-1].thought)


def test_scores_one_probability_per_step_and_round_trip(parts, tmp_path):
    task, problems, tokenizer, encoder, model = parts
    verifier = LearnedVerifier.from_parts(model, tokenizer, encoder)
    chain = gold_chain(task, problems[0])
    scores = verifier.step_scores(problems[0], chain)
    assert len(scores) == len(chain.steps)
    assert all(0.0 <= s <= 1.0 for s in scores)
    save_verifier(tmp_path / "v", model, tokenizer, fp16=False)
    again = LearnedVerifier.from_parts(*load_parts(tmp_path / "v", encoder=encoder)[:2], encoder)
    assert again.step_scores(problems[0], chain) == scores
    assert verifier.score(problems[0], chain) == min(scores)
    assert chain.steps[0].scores["learned"] == scores[0]


def test_wrong_encoder_fails_loudly(parts, tmp_path):
    task, problems, tokenizer, encoder, model = parts
    save_verifier(tmp_path / "v", model, tokenizer)
    other = PatchEncoder(vision_config("vit", hidden_size=16, layers=1, heads=2, patch_size=8), dim=8, pad=True)
    with pytest.raises(ValueError, match="encoder"):
        load_parts(tmp_path / "v", encoder=other)


def test_wrong_task_refused(parts):
    task, problems, tokenizer, encoder, model = parts
    other = generate_split(tasks.get("frozenlake-mcq-v0"), "train", 3, 1, seed=0)[0]
    with pytest.raises(ValueError, match="trained on"):
        LearnedVerifier.from_parts(model, tokenizer, encoder).step_scores(other, Chain(other.id, other.task, steps=[Step("Go up.")]))


def test_training_on_a_tiny_batch_reduces_the_loss(parts):
    task, problems, tokenizer, encoder, _ = parts
    from vot.learned_verifier import VisionCache

    vision = VisionCache(encoder)
    examples, labels = [], []
    for problem in problems:
        for wrong in (False, True):
            chain = gold_chain(task, problem, wrong)
            examples += step_examples(problem, chain, tokenizer, vision)
            labels += [0.0 if wrong and k == 0 else 1.0 for k in range(len(chain.steps))]
    generator = torch.Generator().manual_seed(1)
    config = VerifierConfig(task=TASK, bundle="maze-mcq", vocab_size=len(tokenizer), vision_dim=8, width=16, layers=1, heads=2)
    model = VerifierModel(config).init_weights(generator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    batch, y = collate(examples), torch.tensor(labels)
    losses = []
    for _ in range(30):
        loss = F.binary_cross_entropy_with_logits(model(**batch), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_registry_keeps_no_argument_construction():
    for name, factory in VERIFIERS.items():
        assert factory().label == name
    assert get_verifier("learned").label == "learned"


def test_shipped_verifier_loads_by_name_and_scores_a_bundle_chain():
    try:
        shipped_dir(TASK)
    except FileNotFoundError:
        pytest.skip("no shipped learned verifier for maze-mcq")
    import vot

    reasoner = vot.load("maze", sketcher="oracle")
    problem = generate_split(tasks.get(TASK), "val", 3, 1, seed=0)[0]
    chain = reasoner.run([problem], 1, greedy=True)[0][0]
    scores = get_verifier("learned").step_scores(problem, chain)
    assert len(scores) == len(chain.steps) and all(0.0 <= s <= 1.0 for s in scores)


def test_cli_parses_train_verifier_and_refuses_navigation():
    from vot.cli import build_parser
    from vot.verifier_train import VerifierTrainConfig, train_verifier

    args = build_parser().parse_args(["train", "verifier", "--task", "maze", "--chains-per-problem", "2",
                                      "--problems-per-size", "3", "--steps", "5", "--sizes", "3,4"])
    assert (args.what, args.chains_per_problem, args.problems_per_size, args.sizes) == ("verifier", 2, 3, [3, 4])
    with pytest.raises(ValueError, match="MCQ"):
        train_verifier(VerifierTrainConfig(task="frozenlake-nav-v0"))


def test_train_verifier_end_to_end_on_the_scaffold(tmp_path):
    """A tiny real run: sampled chains of the shipped bundle, labelled, trained, saved, evaluated."""
    from vot.verifier_train import VerifierTrainConfig, train_verifier

    out = train_verifier(VerifierTrainConfig(task=TASK, sizes=[8], problems_per_size=4, chains_per_problem=2, steps=6,
                                             batch=8, val_problems_per_size=2, val_chains=2, out=str(tmp_path / "v"),
                                             checkpoint_every=2), progress=False)
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["train"]["chains"] == 8 and summary["train"]["wrong_steps"] > 0
    assert summary["selection"]["problems"] == 2 and summary["device"] == "cpu"
    log = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == list(range(6))
    assert not (out / "checkpoints").exists()
    problem = generate_split(tasks.get(TASK), "val", 3, 1, seed=0)[0]
    scores = LearnedVerifier(out).step_scores(problem, gold_chain(tasks.get(TASK), problem))
    assert all(0.0 <= s <= 1.0 for s in scores)
    with pytest.raises(ValueError, match="--resume"):
        train_verifier(VerifierTrainConfig(task=TASK, out=str(out)))
