"""HFPolicy on a tiny random LLaVA built offline (CLIP vision tower + Llama text model, WordLevel tokenizer)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("transformers")
from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers  # noqa: E402
from transformers import (CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration,  # noqa: E402
                          LlavaProcessor, PreTrainedTokenizerFast)

import tasks  # noqa: E402
from imagegen.base import BlankSketcher, OracleSketcher  # noqa: E402
from vot.hf_policy import HFPolicy  # noqa: E402
from vot.policy import Policy  # noqa: E402
from vot.reasoner import Reasoner  # noqa: E402

TASK = "maze-mcq-v0"
SPECIALS = ["</s>", "<s>", "<pad>", "<unk>", "<image>"]
TEMPLATE = ("<s>{% for m in messages %}{{ m['role'] }} :{% if m['content'] is string %} {{ m['content'] }}{% else %}"
            "{% for c in m['content'] %}{% if c['type'] == 'image' %} <image>{% else %} {{ c['text'] }}{% endif %}"
            "{% endfor %}{% endif %} </s> {% endfor %}{% if add_generation_prompt %}assistant :{% endif %}")
# Tokens the tiny model must never pick greedily (so a chain neither stops nor answers by chance).
QUIET = SPECIALS + ["\n", "A", "B", "C", "D", "blue", "cyan", "magenta", "purple", "answer"]


def _problems(n=3):
    task = tasks.get(TASK)
    return [task.generate(np.random.default_rng(i), size=3) for i in range(n)]


def _tokenizer():
    pre = pre_tokenizers.Whitespace()
    words = set()
    for problem in _problems(6):
        words |= {w for w, _ in pre.pre_tokenize_str(problem.prompt)}
    extra = f"user assistant : Go up down left right . The answer is A B C D {HFPolicy.SKETCH_TEXT} {HFPolicy.CONTINUE_TEXT}"
    words |= {w for w, _ in pre.pre_tokenize_str(extra)}
    vocab = {token: i for i, token in enumerate(SPECIALS + ["\n"] + sorted(words - set(SPECIALS)))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIALS])
    backend.add_tokens([AddedToken("\n", normalized=False)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")


def _save_checkpoint(directory, *, eos_only=False, chat_template=TEMPLATE):
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tokenizer = _tokenizer()
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    # 32 / 8 = 4 -> 16 patches + CLS (num_additional_image_tokens=1), minus CLS ("default") = 16 image tokens
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=8,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=chat_template)
    vision = CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                              num_attention_heads=2)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id)
    config = LlavaConfig(vision_config=vision, text_config=text, vision_feature_layer=-1,
                         image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                         vision_feature_select_strategy="default")
    torch.manual_seed(0)  # model init only; the policy itself never touches the global RNG
    model = LlavaForConditionalGeneration(config).eval()
    with torch.no_grad():
        head = model.lm_head.weight
        if eos_only:  # every logit 0: greedy argmax takes the first id, which is EOS ("</s>" is id 0)
            head.zero_()
        else:  # logit 0 for the quiet tokens; the largest of ~70 random logits is surely above 0
            head.mul_(20.0)
            head[tokenizer.convert_tokens_to_ids(QUIET)] = 0.0
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return _save_checkpoint(tmp_path_factory.mktemp("tiny-llava"))


@pytest.fixture(scope="module")
def policy(checkpoint):
    return HFPolicy(checkpoint, max_new_tokens=6)


def test_label_and_protocol(policy, checkpoint):
    assert isinstance(policy, Policy)
    assert policy.label == f"hf:{checkpoint.name}"
    assert policy.tokenizer.padding_side == "left"
    assert policy.model.dtype == torch.float32


def test_two_step_chain_through_the_loop(policy):
    problem = _problems(1)[0]
    calls = []
    original = policy.processor.apply_chat_template

    def spy(conversations, *args, **kwargs):
        calls.append([sum(c.get("type") == "image" for m in conv for c in m["content"]) for conv in conversations])
        return original(conversations, *args, **kwargs)

    policy.processor.apply_chat_template = spy
    try:
        reasoner = Reasoner(policy, OracleSketcher(TASK), max_steps=2)
        running = reasoner.start([problem], [0], greedy=True)
        reasoner.complete(running)
    finally:
        del policy.processor.apply_chat_template
    chain, context = running[0].chain, running[0].context
    assert len(chain.steps) == 2 and chain.meta.get("stopped") == "max_steps"
    assert isinstance(chain.steps[0].sketch, Image.Image)
    assert calls == [[1], [2]]  # the second think reads the problem image and the first sketch
    assert context.num_images == 2
    assert [m["role"] for m in context.messages] == ["user", "assistant", "user", "assistant"]
    for step, ids in zip(chain.steps, context.token_ids):
        assert step.thought and not step.is_answer
        assert len(step.logprobs) == len(ids) == 6
        assert all(isinstance(lp, float) and math.isfinite(lp) and lp < 0 for lp in step.logprobs)
    assert chain.compute.policy_tokens == 12


def _greedy(policy, problems):
    reasoner = Reasoner(policy, OracleSketcher(TASK), max_steps=2)
    chains = reasoner.run(problems, n=1, greedy=True)
    return [[(s.thought, s.logprobs) for s in c[0].steps] for c in chains]


def test_greedy_is_deterministic_and_batch_invariant(policy):
    problems = _problems(2)
    batched = _greedy(policy, problems)
    assert batched == _greedy(policy, problems)
    singles = [_greedy(policy, [p])[0] for p in problems]
    for got, want in zip(batched, singles):
        assert [t for t, _ in got] == [t for t, _ in want]
        np.testing.assert_allclose(np.concatenate([lp for _, lp in got]), np.concatenate([lp for _, lp in want]),
                                   atol=1e-4)


def test_sampling_is_keyed_per_chain(checkpoint):
    sampler = HFPolicy(checkpoint, temperature=1.0, top_p=0.9, max_new_tokens=4, seed=3)
    problems = _problems(2)
    state = torch.random.get_rng_state()

    def texts(contexts):
        return [t.text for t in sampler.think(contexts)]

    both = texts(sampler.begin(problems, [0, 0]))
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is never used
    assert [texts(sampler.begin([p], [0]))[0] for p in problems] == both  # batching does not matter
    again = HFPolicy(checkpoint, temperature=1.0, top_p=0.9, max_new_tokens=4, seed=3)
    assert [t.text for t in again.think(again.begin(problems, [0, 0]))] == both
    many = texts(sampler.begin([problems[0]] * 4, [0, 1, 2, 3]))
    assert many[0] == both[0] and len(set(many)) > 1  # sample indices differ
    # forks copy the conversation and sample differently from their parent
    parent = sampler.begin([problems[0]], [0])[0]
    child = sampler.fork(parent, 1)
    assert child.messages == parent.messages and child.messages is not parent.messages
    first = texts([parent, child])
    assert len(parent.messages) == len(child.messages) == 2
    assert first[0] == both[0]
    other_forks = texts([sampler.fork(sampler.begin([problems[0]], [0])[0], b) for b in range(2, 6)])
    assert len(set(other_forks + first)) > 1


def test_eos_without_action_is_an_answer(tmp_path):
    policy = HFPolicy(_save_checkpoint(tmp_path / "eos", eos_only=True), max_new_tokens=5)
    contexts = policy.begin(_problems(1), [0], greedy=True)
    (thought,) = policy.think(contexts)
    assert thought.is_answer and thought.text == ""
    assert len(thought.logprobs) == 1 and thought.logprobs[0] < 0
    assert contexts[0].token_ids == [[policy.tokenizer.eos_token_id]]


def test_answer_detection(policy):
    context = policy.begin(_problems(1), [0])[0]
    assert policy._states_answer(context, "The answer is C .")
    assert not policy._states_answer(context, "Go right .")
    nav = policy.begin([tasks.get("maze-nav-v0").generate(np.random.default_rng(0), size=3)], [0])[0]
    assert not policy._states_answer(nav, "Go right .")  # an action sentence is not a plan answer
    assert policy._states_answer(nav, "The answer is : Go right .")


def test_cut_at_newline_and_eos(policy):
    tok = policy.tokenizer
    ids = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    newline, eos = tok.convert_tokens_to_ids("\n"), tok.eos_token_id
    assert policy._cut([newline] + ids("Go right .") + [newline] + ids("Go up")) == (5, "Go right .", False)
    assert policy._cut(ids("Go up") + [eos] + ids("Go")) == (3, "Go up", True)
    assert policy._cut(ids("Go up")) == (2, "Go up", False)


def test_text_only_observe_keeps_roles_alternating(policy):
    reasoner = Reasoner(policy, BlankSketcher(), max_steps=2)
    running = reasoner.start(_problems(1), [0], greedy=True)
    reasoner.complete(running)
    assert [m["role"] for m in running[0].context.messages] == ["user", "assistant", "user", "assistant"]
    assert running[0].context.num_images == 1


def test_errors(policy, checkpoint, tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        HFPolicy(missing)
    with pytest.raises(ValueError, match="chat template"):
        HFPolicy(_save_checkpoint(tmp_path / "notemplate", chat_template=None))
    with pytest.raises(ValueError, match="2 problems but 1 sample"):
        policy.begin(_problems(2), [0])
    contexts = policy.begin(_problems(2), [0, 1], greedy=True)
    with pytest.raises(ValueError, match="1 images for 2 contexts"):
        policy.observe(contexts, [contexts[0].problem.image], None)
    with pytest.raises(TypeError, match="PIL"):
        policy.observe(contexts[:1], ["not an image"], None)
    policy.think(contexts[:1])
    with pytest.raises(ValueError, match="without observe"):
        policy.think(contexts[:1])
    for bad in (dict(temperature=-1), dict(top_p=0.0), dict(max_new_tokens=0), dict(seed=-1)):
        with pytest.raises(ValueError):
            HFPolicy(checkpoint, **bad)
    assert policy.think([]) == []


def test_bench_components_accept_an_hf_checkpoint(checkpoint):
    from vot.components import build_reasoner

    reasoner = build_reasoner("maze-mcq-v0", policy=f"hf:{checkpoint}", sketcher="oracle", max_steps=2)
    chains = reasoner.run(_problems(1), n=1)[0]
    assert reasoner.encoder is None and len(chains[0].steps) == 2
    assert all(c.compute.encoder_calls == 0 for c in chains)  # its own vision tower reads the sketches
    with pytest.raises(ValueError, match="name the task"):
        build_reasoner(policy=f"hf:{checkpoint}")


@pytest.mark.parametrize("greedy", [True, False])
def test_incremental_decoding_equals_the_batched_re_prefill_and_reads_only_new_tokens(checkpoint, greedy):
    incremental = HFPolicy(checkpoint, max_new_tokens=6, temperature=1.5, seed=3)
    batched = HFPolicy(checkpoint, max_new_tokens=6, temperature=1.5, seed=3, incremental=False)
    assert incremental.incremental and not batched.incremental
    fed = []
    forward = incremental.model.forward

    def spy(*args, **kwargs):  # per forward: the tokens each row reads (padding masked out)
        width = kwargs["input_ids"].shape[1]
        fed.append(kwargs["attention_mask"][:, -width:].sum(dim=1).tolist())
        return forward(*args, **kwargs)

    incremental.model.forward = spy
    problems = _problems(2)
    chains = {}
    for name, policy in (("incremental", incremental), ("batched", batched)):
        reasoner = Reasoner(policy, OracleSketcher(TASK), max_steps=3)
        running = reasoner.start(problems, [0, 1], greedy=greedy)
        reasoner.complete(running)
        chains[name] = [r.chain for r in running]
    for a, b in zip(chains["incremental"], chains["batched"]):
        assert a.thoughts == b.thoughts
        assert np.allclose(a.logprobs, b.logprobs, atol=1e-4)
    prompts = [len(incremental.processor.apply_chat_template([r.context.messages[:1]], add_generation_prompt=True,
                                                             tokenize=True, return_dict=True)["input_ids"][0]) for r in running]
    prefills = [rows for rows in fed if max(rows) > 1]  # a think: one prefill of all chains, then decode steps
    assert prefills[0] == prompts  # the first think reads each chain's whole prompt ...
    assert len(prefills) == 3 and all(n < min(prompts) / 2 for rows in prefills[1:] for n in rows)  # ... later ones only the new turns


def test_forks_and_rewinds_with_caches_equal_the_re_prefill_path(checkpoint):
    """A refined chain rewinds to snapshots and forks; with per-chain caches its thoughts are those of
    the cache-free path, and a fork never reads its parent's cache."""
    chains = {}
    for incremental in (True, False):
        policy = HFPolicy(checkpoint, max_new_tokens=6, temperature=1.5, seed=4, incremental=incremental)
        reasoner = Reasoner(policy, OracleSketcher(TASK), max_steps=3)
        problem = _problems(1)[0]
        [parent] = reasoner.start([problem], [0], snapshots=True)
        reasoner.complete([parent])
        children = [reasoner.rewind(parent, 1, sample=5), reasoner.fork(parent, sample=6)]
        reasoner.complete(children)
        if incremental:
            assert children[0].context.cache is not parent.context.cache
        chains[incremental] = [c.chain.thoughts for c in [parent, *children]]
    assert chains[True] == chains[False]


def test_a_changed_image_at_a_cached_position_is_read_again(policy):
    """Image placeholders are the same tokens whatever the image: the cache must not reuse the keys
    of a sketch that has since been replaced."""
    problem = _problems(1)[0]
    [context] = policy.begin([problem], [0], greedy=True)
    policy.think([context])
    policy.observe([context], [problem.image])
    policy.think([context])
    context.messages[2]["content"][0]["image"] = Image.new("RGB", problem.image.size, "white")  # another sketch there
    context.messages.pop()  # think again after the changed sketch
    ids = policy.processor.apply_chat_template([context.messages], add_generation_prompt=True, tokenize=True,
                                               return_dict=True)["input_ids"][0]
    image = policy.model.config.image_token_id
    second = next(i for i in range(1, len(ids)) if ids[i] == image and ids[i - 1] != image and i > ids.index(image) + 1)
    fed = []
    hook = policy.model.register_forward_pre_hook(lambda m, a, k: fed.append(k["input_ids"].shape[1]), with_kwargs=True)
    try:
        policy.think([context])
    finally:
        hook.remove()
    assert fed[0] == len(ids) - second  # re-read from the changed sketch on, not from the end of the cache


@pytest.mark.parametrize("greedy", [True, False])
def test_chains_decoded_together_equal_chains_decoded_alone(checkpoint, greedy):
    """The incremental path runs all chains of a think in one padded batch: every chain's thoughts and
    log-probs are those it gets on its own (with caches of different lengths), and a think costs one
    prefill and one forward per token, not per chain."""
    problems = _problems(3)
    chains = {}
    for together in (True, False):
        policy = HFPolicy(checkpoint, max_new_tokens=6, temperature=1.5, seed=5)
        forwards = []
        forward = policy.model.forward

        def spy(*args, **kwargs):
            forwards.append(kwargs["input_ids"].shape)
            return forward(*args, **kwargs)

        policy.model.forward = spy
        contexts = policy.begin(problems, [0, 1, 2], greedy=greedy)
        thoughts = [[] for _ in contexts]
        for _ in range(3):
            forwards.clear()
            batches = [contexts] if together else [[c] for c in contexts]
            for batch in batches:
                for row, thought in zip([contexts.index(c) for c in batch], policy.think(batch)):
                    thoughts[row].append(thought)
            if together:
                decode = [shape for shape in forwards if shape[1] == 1]
                assert len(forwards) - len(decode) == 1  # one prefill of all three chains
                assert len(decode) <= policy.max_new_tokens - 1 and all(shape[0] == 3 for shape in forwards)
            policy.observe(contexts, [p.image for p in problems])
        chains[together] = thoughts
    for a, b in zip(chains[True], chains[False]):
        assert [t.text for t in a] == [t.text for t in b]
        assert np.allclose(sum((t.logprobs for t in a), []), sum((t.logprobs for t in b), []), atol=1e-4)
