"""The project's own policy: tokenizer, sequences, the model, KV-cache decoding and training."""
import json

import numpy as np
import pytest
import torch

import tasks
from imagegen import BlankSketcher, OracleSketcher
from tasks.splits import generate_split
from vot.lm.model import IMAGE_SLOT, PolicyModel, PolicyShape, PolicySpec
from vot.lm.policy import SmallPolicy
from vot.lm.sequences import IGNORE, build_example, corpus
from vot.lm.tokenizer import WordTokenizer
from vot.reasoner import Reasoner

MCQ = ["maze-mcq-v0", "frozenlake-mcq-v0", "minibehavior-mcq-v0"]
TINY = dict(hidden=32, layers=2, heads=2, kv_heads=1, vision_hidden=16, vision_layers=1, vision_heads=2)


def _problems(task_id, count=3):
    task = tasks.get(task_id)
    return [task.generate(np.random.default_rng(i), size=task.in_distribution[i % 2]) for i in range(count)]


def _model(task_id="maze-mcq-v0", mode="vot", decoder="llama", seed=0):
    problems = _problems(task_id, 6)
    tokenizer = WordTokenizer.train(corpus(problems))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return PolicyModel(PolicySpec(task_id, mode, PolicyShape(decoder=decoder, **TINY)), tokenizer).eval()


@pytest.mark.parametrize("task_id", tasks.names())
def test_tokenizer_round_trips_every_thought(task_id):
    task = tasks.get(task_id)
    problems = [task.generate(np.random.default_rng(i), size=s) for i, s in
                enumerate(task.in_distribution + task.out_of_distribution)]
    tokenizer = WordTokenizer.train(corpus(problems[:2]))
    for problem in problems:
        for style in ("visual", "text"):
            for step in task.trace(problem, style):
                ids = tokenizer.encode(step.thought)
                assert tokenizer.unk not in ids, step.thought
                assert tokenizer.decode(ids) == step.thought


def test_tokenizer_numbers_use_single_digits_and_save_load(tmp_path):
    tokenizer = WordTokenizer.train(["Go up. Now at row 3, column 0."])
    text = "Go up. Now at row 12, column 10."
    assert tokenizer.decode(tokenizer.encode(text)) == text
    tokenizer.save(tmp_path / "t.json")
    assert WordTokenizer.load(tmp_path / "t.json").encode(text) == tokenizer.encode(text)


@pytest.mark.parametrize("mode", ["vot", "cot", "direct"])
def test_examples_supervise_only_what_the_policy_writes(mode):
    problem = _problems("maze-mcq-v0", 1)[0]
    task = tasks.get(problem.task)
    tokenizer = WordTokenizer.train(corpus([problem]))
    example = build_example(problem, mode, tokenizer, patch=16)
    style = "text" if mode == "cot" else "visual"
    trace = task.trace(problem, style)[-1:] if mode == "direct" else task.trace(problem, style)
    supervised = [i for i, label in zip(example.ids, example.labels) if label != IGNORE]
    expected = []
    for step in trace:
        expected += tokenizer.encode(step.thought) + [tokenizer.eot if step.action else tokenizer.eos]
    assert supervised == expected
    images = 1 + (len(problem.actions) if mode == "vot" else 0)
    assert len(example.images) == images
    side = -(-problem.image.size[0] // 16)
    assert example.ids.count(IMAGE_SLOT) == images * side * side
    with pytest.raises(ValueError, match="sketches for"):
        build_example(problem, "vot", tokenizer, 16, sketches=[problem.image] * (len(problem.actions) + 1))


@pytest.mark.parametrize("decoder", ["llama", "qwen2"])
def test_save_and_load_round_trip(tmp_path, decoder):
    model = _model(decoder=decoder)
    model.save_pretrained(tmp_path / "p")
    loaded = PolicyModel.from_pretrained(tmp_path / "p")
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    assert loaded.spec == model.spec
    with pytest.raises(FileNotFoundError, match="no policy.json"):
        PolicyModel.from_pretrained(tmp_path)


def _texts(chains):
    return [[[(s.thought, s.is_answer) for s in c.steps] for c in group] for group in chains]


@pytest.mark.parametrize("greedy", [True, False])
def test_batched_chains_equal_one_by_one(greedy):
    model = _model()
    policy = SmallPolicy(model, max_thought_tokens=5, seed=3)
    reasoner = Reasoner(policy, OracleSketcher("maze-mcq-v0"), max_steps=4)
    problems = _problems("maze-mcq-v0", 3)
    batched = reasoner.run(problems, n=2, greedy=greedy)
    alone = [reasoner.run([p], n=2, greedy=greedy)[0] for p in problems]
    assert _texts(batched) == _texts(alone)
    for group_a, group_b in zip(batched, alone):
        for a, b in zip(group_a, group_b):
            np.testing.assert_allclose([x for s in a.steps for x in s.logprobs],
                                       [x for s in b.steps for x in s.logprobs], atol=1e-4)
    if not greedy:  # the two samples of a problem differ, and a rerun repeats them
        assert _texts(batched) != _texts([[g[0], g[0]] for g in batched])
        assert _texts(reasoner.run(problems, n=2)) == _texts(batched)


def test_incremental_decoding_matches_a_full_forward():
    """The log-probs written with the KV cache (vision tokens appended, no re-prefill) equal those
    of one teacher-forced forward over the whole transcript."""
    model = _model()
    policy = SmallPolicy(model, max_thought_tokens=4, seed=1)
    problem = _problems("maze-mcq-v0", 1)[0]
    contexts = policy.begin([problem], [0])
    sketcher, image, written = OracleSketcher("maze-mcq-v0"), problem.image, []
    images = [image]
    for _ in range(3):
        start = len(contexts[0].history)
        thought = policy.think(contexts)[0]
        written.append((start, thought.logprobs))
        if thought.is_answer:
            break
        image = sketcher.sketch([image], [thought.text or "Go up."])[0]
        images.append(image)
        policy.observe(contexts, [image], policy.encoder.encode([image]))
    history = contexts[0].history + contexts[0].pending
    from vision_encoder.patch import images_to_pixels

    with torch.no_grad():
        vision = model.encoder(images_to_pixels(images))  # (N, T, D)
        embeds = model.embed(torch.tensor([history]), vision, torch.tensor([model.tokenizer.segments(history)]))
        logits = model.decoder(inputs_embeds=embeds).logits[0].float()  # (L, V)
        logits[:, policy._banned] = float("-inf")  # structural tokens the policy never writes
        logits = torch.log_softmax(logits, -1)
    for start, logprobs in written:
        tokens = history[start:start + len(logprobs)]  # a thought cut at max length leaves its last token unfed
        assert len(tokens) >= len(logprobs) - 1 and tokens
        full = [float(logits[start - 1 + i, t]) for i, t in enumerate(tokens)]
        np.testing.assert_allclose(logprobs[:len(full)], full, atol=1e-4)


def test_forks_share_their_past_and_sample_their_own_future():
    model = _model()
    policy = SmallPolicy(model, max_thought_tokens=6, seed=0, temperature=2.0)
    problem = _problems("maze-mcq-v0", 1)[0]
    [context] = policy.begin([problem], [0])
    forks = [policy.fork(context, b) for b in range(4)]
    thoughts = [t.text for t in policy.think(forks)]
    assert len(set(thoughts)) > 1
    again = [t.text for t in policy.think([policy.fork(context, b) for b in range(4)])]
    assert again == thoughts
    assert context.logits is not None and not context.pending  # the parent is untouched


def test_policy_errors_name_the_problem():
    model = _model()
    policy = SmallPolicy(model)
    with pytest.raises(ValueError, match="trained on maze-mcq-v0"):
        policy.begin(_problems("frozenlake-mcq-v0", 1), [0])
    with pytest.raises(ValueError, match="sample indices"):
        policy.begin(_problems("maze-mcq-v0", 2), [0])
    contexts = policy.begin(_problems("maze-mcq-v0", 1), [0])
    policy.think(contexts)
    with pytest.raises(ValueError, match="without observe"):
        policy.think(contexts)
    with pytest.raises(ValueError, match="top_p"):
        SmallPolicy(model, top_p=0.0)


def test_text_only_modes_run_without_images():
    model = _model(mode="cot")
    policy = SmallPolicy(model, max_thought_tokens=4)
    chains = Reasoner(policy, BlankSketcher(), max_steps=3).run(_problems("maze-mcq-v0", 2), n=1)
    assert all(len(c[0].steps) >= 1 and c[0].steps[0].sketch is None for c in chains)


def test_edge_perception_names_the_walls_and_trains_its_own_head():
    task = tasks.get("maze-nav-v0")
    problem = task.generate(np.random.default_rng(5), 5)
    state = task.initial_state(problem)
    tokenizer = WordTokenizer.train(corpus([problem]))
    model = PolicyModel(PolicySpec(task.id, "vot", PolicyShape(perception_edges=True, **TINY)), tokenizer)
    from vision_encoder.patch import images_to_pixels

    pixels = images_to_pixels([task.render(state)])  # (1, 3, 40, 40): padded to 48, 3x3 tokens of 2x2 cells
    edges = model.cell_edge_colours(pixels).reshape(3, 3, 2, 2, 4).permute(0, 2, 1, 3, 4).reshape(6, 6, 4)
    for r in range(5):
        for c in range(5):
            for k, side in enumerate(("up", "down", "left", "right")):
                assert (int(edges[r, c, k]) == 0) == (not state.layout.is_open((r, c), side)), (r, c, side)
    example = build_example(problem, "vot", tokenizer, model.spec.shape.patch)
    ids = torch.tensor([example.ids])
    images = torch.from_numpy(np.stack(example.images)).permute(0, 3, 1, 2).float() / 127.5 - 1  # (N, 3, H, W)
    loss = model(ids, torch.tensor([tokenizer.segments(example.ids)]), torch.ones_like(ids),
                 torch.tensor([example.labels]), images)
    loss.backward()
    assert model.edge_perception.weight.grad is not None and model.edge_perception.weight.grad.abs().sum() > 0


def test_context_perception_names_the_four_neighbours_and_starts_as_the_policy_without_it():
    task = tasks.get("minibehavior-nav-v1")
    problem = task.generate(np.random.default_rng(3), 6)
    tokenizer = WordTokenizer.train(corpus([problem]))
    shape = dict(TINY, patch=8, perception_edges=True)
    plain = PolicyModel(PolicySpec(task.id, "vot", PolicyShape(**shape)), tokenizer)
    model = PolicyModel(PolicySpec(task.id, "vot", PolicyShape(perception_context=True, **shape)), tokenizer)
    from vision_encoder.patch import images_to_pixels

    pixels = images_to_pixels([task.render(task.trace(problem)[0].state)])  # (1, 3, 48, 48): 6x6 tokens, one cell each
    own = model.cell_colours(pixels).reshape(6, 6)
    around = model.neighbour_colours(pixels).reshape(6, 6, 4)
    for r in range(6):
        for c in range(6):
            expected = [own[r - 1, c] if r else -100, own[r + 1, c] if r < 5 else -100,
                        own[r, c - 1] if c else -100, own[r, c + 1] if c < 5 else -100]
            assert [int(v) for v in around[r, c]] == [int(v) for v in expected], (r, c)
    assert len(set(own.flatten().tolist())) >= 4  # walls, floor, wave colours: a test that can tell neighbours apart

    # A warm start from the policy without the neighbourhood convolution sees exactly what it saw.
    missing, unexpected = model.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and {k.split(".")[0] for k in missing} == {"encoder", "context_perception"}
    assert torch.equal(model.encoder(pixels), plain.encoder(pixels))

    example = build_example(problem, "vot", tokenizer, model.spec.shape.patch)
    ids = torch.tensor([example.ids])
    images = torch.from_numpy(np.stack(example.images)).permute(0, 3, 1, 2).float() / 127.5 - 1  # (N, 3, H, W)
    loss = model(ids, torch.tensor([tokenizer.segments(example.ids)]), torch.ones_like(ids),
                 torch.tensor([example.labels]), images)
    loss.backward()
    stem = model.encoder.vision.embeddings.patch_embeddings.projection
    assert stem[3].weight.grad.abs().sum() > 0 and model.context_perception.weight.grad.abs().sum() > 0


def test_the_neighbourhood_convolution_needs_a_stem():
    from vision_encoder.patch import PatchEncoder, vision_config

    with pytest.raises(ValueError, match="stem"):
        PatchEncoder(vision_config("vit", patch_size=8), dim=16, stem=None, context=True)
