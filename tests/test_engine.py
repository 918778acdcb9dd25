"""The batched engine: keyed device sampling and the batch-resident KV cache."""
import gc

import numpy as np
import pytest
import torch

import tasks
from vot.lm.attention import ATTENTION, decode_attention
from vot.lm.kv import DecodeScratch, SlotCache
from vot.lm.policy import SmallPolicy
from vot.lm.sampling import key_tensor, sample, uniforms
from tests.test_small_policy import _model, _problems


def test_uniforms_are_keyed_per_row_and_counter():
    keys = key_tensor([1, 2**61 + 5, 1], "cpu")
    counters = torch.tensor([0, 0, 1])
    u = uniforms(keys, counters, 50)  # (3, 50)
    assert u.shape == (3, 50) and float(u.min()) > 0 and float(u.max()) < 1
    alone = torch.cat([uniforms(keys[i:i + 1], counters[i:i + 1], 50) for i in range(3)])
    assert torch.equal(u, alone)  # a row does not depend on the batch around it
    assert not torch.equal(u[0], u[1]) and not torch.equal(u[0], u[2])
    # roughly uniform and uncorrelated across vocabulary ids and counters
    many = uniforms(key_tensor([7] * 400, "cpu"), torch.arange(400), 64).flatten()
    assert abs(float(many.mean()) - 0.5) < 0.01 and abs(float(many.std()) - 12 ** -0.5) < 0.01


def test_gumbel_sampling_follows_the_softmax_and_the_nucleus():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0, float("-inf")])
    draws = 20000
    keys = key_tensor([123] * draws, "cpu")
    tokens = sample(logits.expand(draws, -1), False, keys, torch.arange(draws), temperature=1.0, top_p=1.0)
    freq = np.bincount(tokens.numpy(), minlength=5) / draws
    expected = torch.softmax(logits, -1).numpy()
    assert freq[4] == 0
    np.testing.assert_allclose(freq, expected, atol=0.015)
    hot = sample(logits.expand(draws, -1), False, keys, torch.arange(draws), temperature=2.0, top_p=1.0)
    np.testing.assert_allclose(np.bincount(hot.numpy(), minlength=5) / draws,
                               torch.softmax(logits / 2, -1).numpy(), atol=0.015)
    nucleus = sample(logits.expand(draws, -1), False, keys, torch.arange(draws), temperature=1.0, top_p=0.8)
    assert set(nucleus.tolist()) == {0, 1}  # 0.64 + 0.24 reaches 0.8; token 2 and later are cut
    greedy = torch.tensor([True, False] * (draws // 2))
    mixed = sample(logits.expand(draws, -1), greedy, keys, torch.arange(draws), temperature=1.0, top_p=1.0)
    assert set(mixed[greedy].tolist()) == {0} and torch.equal(mixed[~greedy], tokens[~greedy])


def test_slots_move_without_changing_contents_and_are_released():
    pool = SlotCache(2, 1, 4, device="cpu", dtype=torch.float32, slot_chunk=2, length_chunk=4)
    slots = [pool.allocate() for _ in range(5)]
    pool.reserve(5, 6)
    for i, slot in enumerate(slots):
        pool.data[:, :, slot.index, :, :6] = float(i)
        pool.extent[slot.index] = 6
    pool.arrange([slots[4], slots[1]])
    assert {slots[4].index, slots[1].index} == {0, 1}
    assert sorted(s.index for s in slots) == [0, 1, 2, 3, 4]
    for i, slot in enumerate(slots):
        assert torch.all(pool.data[:, :, slot.index, :, :6] == float(i))
    pool.arrange([slots[0], slots[4]], start=3)  # rows 3..4: slot 4 moves out, slot 0 in
    assert {slots[0].index, slots[4].index} == {3, 4}
    assert sorted(s.index for s in slots) == [0, 1, 2, 3, 4]
    for i, slot in enumerate(slots):
        assert torch.all(pool.data[:, :, slot.index, :, :6] == float(i))
    assert pool.used == 5
    del slots[:], slot
    gc.collect()
    assert pool.used == 0


def test_a_snapshot_keeps_its_past_while_the_parent_writes_on():
    """A fork shares its parent's slot; the parent's later writes must not reach the fork's
    prefix, and the fork copies on its first write."""
    model = _model()
    policy = SmallPolicy(model, max_thought_tokens=6, seed=0)
    problem = _problems("maze-mcq-v0", 1)[0]
    [parent] = policy.begin([problem], [0], greedy=True)
    snapshot = policy.fork(parent, 1)
    assert snapshot.slot is parent.slot
    first = policy.think([parent])[0]
    policy.observe([parent], [problem.image], None)
    policy.think([parent])  # the parent writes on past the snapshot's length
    again = policy.think([snapshot])[0]
    assert snapshot.slot is not parent.slot  # copied on write
    assert again.text == first.text
    np.testing.assert_allclose(again.logprobs, first.logprobs, atol=1e-5)


def test_a_rewound_chain_takes_its_earlier_snapshots_along():
    """Refinement rewinds a chain to a snapshot and keeps the snapshots before it. Once the
    rewound chain copies its prefix, those snapshots read the copy, so the replaced chain's
    slot is released with it, and they still continue exactly as before."""
    model = _model()
    problem = _problems("maze-mcq-v0", 1)[0]

    def three_steps():
        policy = SmallPolicy(model, max_thought_tokens=6, seed=0)
        [parent] = policy.begin([problem], [0], greedy=True)
        snapshots = []
        for step in range(3):
            snapshots.append(policy.fork(parent, 100 + step))
            policy.think([parent])
            policy.observe([parent], [problem.image], None)
        return policy, parent, snapshots

    policy, _, snapshots = three_steps()
    before = policy.think([policy.fork(snapshots[1], 5)])[0]
    policy, parent, snapshots = three_steps()
    retry, kept = policy.fork(snapshots[2], 7), snapshots[:2]
    policy.think([retry])
    assert retry.slot is not parent.slot
    assert all(s.slot is retry.slot for s in kept)
    assert snapshots[2].slot is parent.slot  # as long as the copy: it stays
    del parent, snapshots
    gc.collect()
    assert policy.cache.used == 1
    after = policy.think([policy.fork(kept[1], 5)])[0]
    assert after.text == before.text
    np.testing.assert_allclose(after.logprobs, before.logprobs, atol=1e-5)


def test_forks_fed_together_get_their_own_slots():
    model = _model()
    policy = SmallPolicy(model, max_thought_tokens=5, seed=0, temperature=3.0)
    problem = _problems("maze-mcq-v0", 1)[0]
    [root] = policy.begin([problem], [0])
    forks = [policy.fork(root, b) for b in range(3)]
    together = [t.text for t in policy.think(forks)]
    assert len({id(f.slot) for f in forks} | {id(root.slot)}) >= 3
    alone = [policy.think([policy.fork(root, b)])[0].text for b in range(3)]
    assert together == alone


def test_shipped_bundle_chains_of_mixed_sizes_equal_one_by_one():
    """Mixed sizes are sketched and observed per image size, so slots of one group are moved
    aside while the other is fed: a chain must come out as it does alone (greedy and sampled)."""
    import vot

    reasoner = vot.load("maze", sketcher="oracle", max_steps=12)
    task = tasks.get("maze-mcq-v0")
    problems = [task.generate(np.random.default_rng(i), size=size) for i, size in enumerate([3, 6, 4, 5])]
    for greedy in (True, False):
        together = reasoner.run(problems, n=2, greedy=greedy)
        alone = [reasoner.run([p], n=2, greedy=greedy)[0] for p in problems]
        assert [[c.answer for c in g] for g in together] == [[c.answer for c in g] for g in alone]
        assert [[[s.thought for s in c.steps] for c in g] for g in together] == \
               [[[s.thought for s in c.steps] for c in g] for g in alone]
        assert max(len(c.steps) for g in together for c in g) > 4  # real multi-step chains


def test_shipped_bundle_chains_decoded_together_equal_a_full_forward_over_each_transcript():
    """Thoughts decoded on the think's scratch (its keys committed back to the pool, rows of
    different lengths) have the log-probs of one teacher-forced forward over the whole chain."""
    import vot
    from vision_encoder.patch import images_to_pixels

    reasoner = vot.load("maze", sketcher="oracle", max_steps=12)
    policy, model = reasoner.policy, reasoner.policy.model
    task = tasks.get(model.spec.task)
    problems = [task.generate(np.random.default_rng(i), size=size) for i, size in enumerate([5, 4, 5])]
    running = reasoner.start(problems, [0, 0, 0], greedy=True)
    reasoner.complete(running)
    for item in running:
        steps = item.chain.steps
        assert len(steps) > 4  # real multi-step chains: later thoughts read committed keys
        history = item.context.history + item.context.pending
        images = [item.problem.image] + [s.sketch for s in steps if s.sketch is not None]
        with torch.no_grad():
            vision = model.encoder(images_to_pixels(images))
            embeds = model.embed(torch.tensor([history]), vision, torch.tensor([model.tokenizer.segments(history)]))
            out = model.decoder(inputs_embeds=embeds, use_cache=True)
        logits = out.logits[0].float()  # (L, V)
        length, slot = item.context.length, item.context.slot.index
        assert length == len(item.context.history)
        for layer, cached in enumerate(out.past_key_values.layers):  # the pool holds every fed position's keys
            torch.testing.assert_close(policy.cache.data[layer, 0, slot, :, :length], cached.keys[0, :, :length], atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(policy.cache.data[layer, 1, slot, :, :length], cached.values[0, :, :length], atol=1e-4, rtol=1e-4)
        logits[:, policy._banned] = float("-inf")
        logits = torch.log_softmax(logits, -1)
        tok = model.tokenizer
        starts = [i + 1 for i, token in enumerate(history) if token in tok.indices and history[i - 1] == tok.img_end]
        assert len(starts) == len(steps)
        for start, step in zip(starts, steps):
            tokens = history[start:start + len(step.logprobs)]
            full = [float(logits[start - 1 + i, t]) for i, t in enumerate(tokens)]
            np.testing.assert_allclose(step.logprobs, full, atol=1e-4)


def test_rows_that_close_leave_the_think_and_the_rest_decode_as_they_would_alone(monkeypatch):
    """A think drops its closed rows once half have closed (`DecodeScratch.keep`): the chains, their
    log-probs and their cached keys are those of thinks that keep every row to the end, and those of
    each chain alone."""
    import vot

    kept = []
    keep = DecodeScratch.keep
    monkeypatch.setattr(DecodeScratch, "keep", lambda self, rows, steps: kept.append(len(rows)) or keep(self, rows, steps))
    reasoner = vot.load("maze", sketcher="oracle", max_steps=10)
    task = tasks.get(reasoner.policy.model.spec.task)
    problems = [task.generate(np.random.default_rng(i), size=(4, 5, 6)[i % 3]) for i in range(6)]

    def chains(compact_rows, batch):
        reasoner.policy.compact_rows = compact_rows
        runs = [reasoner.start(problems[i:i + batch], [0] * len(problems[i:i + batch])) for i in range(0, len(problems), batch)]
        for running in runs:
            reasoner.complete(running)
        items = [item for running in runs for item in running]
        pool = reasoner.policy.cache.data
        keys = [pool[:, :, it.context.slot.index, :, :it.context.length].clone() for it in items]
        return [[s.thought for s in it.chain.steps] for it in items], [[s.logprobs for s in it.chain.steps] for it in items], keys

    dropping = chains(2, 6)  # sampled chains (the bundle's temperature 1)
    assert kept, "no think dropped its closed rows"
    for other in (chains(10**9, 6), chains(2, 1)):
        assert dropping[0] == other[0]
        for ours, theirs in zip(dropping[1], other[1]):
            for a, b in zip(ours, theirs):
                np.testing.assert_allclose(a, b, atol=1e-5)
        for ours, theirs in zip(dropping[2], other[2]):
            torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)  # batch composition moves the last bits


def test_sketches_kept_on_the_device_give_the_chains_of_the_pil_path():
    import vot

    on = vot.load("maze", max_steps=8)
    off = vot.load("maze", max_steps=8)
    off.sketches_on_device = False
    assert on.on_device and not off.on_device
    task = tasks.get("maze-mcq-v0")
    problems = [task.generate(np.random.default_rng(10 + i), size=size) for i, size in enumerate([3, 5, 4])]
    a, b = on.run(problems, n=2), off.run(problems, n=2)
    for group_a, group_b in zip(a, b):
        for x, y in zip(group_a, group_b):
            assert [s.thought for s in x.steps] == [s.thought for s in y.steps]
            for s, t in zip(x.steps, y.steps):
                assert (s.sketch is None) == (t.sketch is None)
                if s.sketch is not None:
                    assert np.array_equal(np.asarray(s.sketch), np.asarray(t.sketch))


def test_a_new_set_of_chains_gives_back_the_last_sets_cache():
    model = _model()
    policy = SmallPolicy(model, max_thought_tokens=5, seed=0, temperature=0)
    problems = _problems("maze-mcq-v0", 9)
    contexts = policy.begin(problems, [0] * 9)
    first = policy.think(contexts)[0].text
    assert policy.cache.slots == 16  # 9 slots, in chunks of 8
    with pytest.raises(RuntimeError, match="9 slots are held"):
        policy.cache.clear()
    del contexts
    gc.collect()
    [again] = policy.begin(problems[:1], [0])
    assert (policy.cache.slots, policy.cache.used) == (8, 1)  # cleared, then one chunk for the one chain
    assert policy.think([again])[0].text == first  # the same chain as before the clear


def test_a_new_set_of_no_more_than_twice_the_size_keeps_the_memory():
    model = _model()
    policy = SmallPolicy(model, max_thought_tokens=5, seed=0, temperature=0)
    problems = _problems("maze-mcq-v0", 9)
    contexts = policy.begin(problems, [0] * 9)
    first = [t.text for t in policy.think(contexts)]
    pool = policy.cache.data.data_ptr()
    del contexts
    gc.collect()
    again = policy.begin(problems[:8], [0] * 8)  # 16 slots held for 8: kept, with the last set's garbage in it
    assert policy.cache.data.data_ptr() == pool and policy.cache.slots == 16
    assert [t.text for t in policy.think(again)] == first[:8]


def test_decode_attention_equals_sdpa_for_one_query_with_grouped_heads():
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    module = torch.nn.Module().eval()
    module.num_key_value_groups = 2
    generator = torch.Generator().manual_seed(0)
    query = torch.randn(3, 4, 1, 8, generator=generator)  # (B, H, 1, d)
    key, value = torch.randn(2, 3, 2, 11, 8, generator=generator)  # (B, H_kv, K, d) each
    visible = torch.rand(3, 1, 1, 11, generator=generator) > 0.3
    visible[..., 0] = True
    mask = torch.zeros(3, 1, 1, 11).masked_fill(~visible, torch.finfo(torch.float32).min)
    ours, _ = decode_attention(module, query, key, value, mask, scaling=0.3)
    reference, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=0.3)
    assert ours.shape == (3, 1, 4, 8)
    torch.testing.assert_close(ours, reference, atol=1e-6, rtol=1e-5)
    strided = torch.randn(3, 2, 20, 8, generator=generator)[:, :, :11]  # not contiguous: SDPA's own path
    torch.testing.assert_close(decode_attention(module, query, strided, strided, mask)[0],
                               sdpa_attention_forward(module, query, strided, strided, mask)[0])


def test_a_policy_decodes_with_its_attention_and_its_model_still_trains():
    model = _model()
    policy = SmallPolicy(model, max_thought_tokens=5, seed=0, temperature=0)
    assert model.decoder.config._attn_implementation == ATTENTION
    ids = torch.tensor([[3, 4, 5, 6]])
    mask = torch.tensor([[0, 1, 1, 1]])  # a 2-D mask (training) goes through sdpa's mask builder
    ours = model.decoder(input_ids=ids, attention_mask=mask).logits
    model.decoder.config._attn_implementation = "sdpa"
    torch.testing.assert_close(ours, model.decoder(input_ids=ids, attention_mask=mask).logits)
    model.decoder.config._attn_implementation = ATTENTION
    contexts = policy.begin(_problems("maze-mcq-v0", 2), [0, 0])
    policy.think(contexts)
    assert isinstance(policy.cache._scratch, torch.Tensor) and policy.cache._scratch.numel() > 0  # decode ran on a scratch


def test_the_decode_scratch_commits_only_the_positions_its_steps_fed():
    pool = SlotCache(1, 1, 2, device="cpu", dtype=torch.float32)
    a, b = pool.allocate(), pool.allocate()
    pool.reserve(2, 6)
    pool.data[:, :, :2, :, :6] = torch.arange(1, 49, dtype=torch.float32).reshape(1, 2, 2, 1, 6, 2)
    before = pool.data.clone()
    scratch = DecodeScratch(pool, 2, lengths=[2, 4], span=6)  # row 0 holds 2 positions, row 1 holds 4
    assert torch.equal(scratch.data[..., :4, :], before[:, :, :2, :, :4]) and not scratch.data[..., 4:, :].any()
    positions = torch.tensor([[2], [4]])
    scratch.at(positions).update(torch.full((2, 1, 1, 2), -1.0), torch.full((2, 1, 1, 2), -2.0), 0)
    scratch.commit(1)
    after = pool.data
    assert (after[0, 0, 0, 0, 2] == -1).all() and (after[0, 1, 0, 0, 2] == -2).all()
    assert (after[0, 0, 1, 0, 4] == -1).all() and (after[0, 1, 1, 0, 4] == -2).all()
    untouched = torch.ones_like(after, dtype=torch.bool)
    untouched[0, :, 0, 0, 2] = untouched[0, :, 1, 0, 4] = False  # the two writes, nothing else
    assert torch.equal(after[untouched], before[untouched])
    assert pool.extent[:2] == [5, 5]
    del a, b


def test_a_kept_scratch_holds_the_open_rows_and_commits_to_their_pool_rows():
    pool = SlotCache(1, 1, 2, device="cpu", dtype=torch.float32)
    slots = [pool.allocate() for _ in range(3)]
    pool.reserve(3, 8)
    pool.data[:, :, :3, :, :8] = torch.arange(1, 97, dtype=torch.float32).reshape(1, 2, 3, 1, 8, 2)
    before = pool.data.clone()
    scratch = DecodeScratch(pool, 3, lengths=[3, 2, 4], span=8)
    for step in range(2):  # every row fed twice
        scratch.at(torch.tensor([[3 + step], [2 + step], [4 + step]])).update(
            torch.full((3, 1, 1, 2), -1.0 - step), torch.full((3, 1, 1, 2), -1.0 - step), 0)
    kept = scratch.keep([0, 2], 2)  # rows 0 and 2 go on; row 1 closed
    assert kept.pool_rows == [0, 2] and kept.lengths == [5, 6]
    assert torch.equal(kept.data[:, :, 0, :, :5], pool.data[:, :, 0, :, :5])
    assert torch.equal(kept.data[:, :, 1, :, :6], pool.data[:, :, 2, :, :6]) and not kept.data[..., 6:, :].any()
    kept.at(torch.tensor([[5], [6]])).update(torch.full((2, 1, 1, 2), -9.0), torch.full((2, 1, 1, 2), -9.0), 0)
    kept.commit(1)
    after = pool.data
    assert (after[0, :, 0, 0, 3] == -1).all() and (after[0, :, 0, 0, 4] == -2).all() and (after[0, :, 0, 0, 5] == -9).all()
    assert (after[0, :, 1, 0, 2] == -1).all() and (after[0, :, 1, 0, 3] == -2).all()
    assert (after[0, :, 2, 0, 4] == -1).all() and (after[0, :, 2, 0, 5] == -2).all() and (after[0, :, 2, 0, 6] == -9).all()
    untouched = torch.ones_like(after, dtype=torch.bool)
    for row, first, last in [(0, 3, 5), (1, 2, 3), (2, 4, 6)]:
        untouched[0, :, row, 0, first:last + 1] = False
    assert torch.equal(after[untouched], before[untouched])
    assert pool.extent[:3] == [7, 6, 7]
    del slots


def test_slots_of_contexts_in_reference_cycles_are_reused_before_the_pool_grows():
    model = _model()
    policy = SmallPolicy(model, max_thought_tokens=5, seed=0, temperature=0)
    problems = _problems("maze-mcq-v0", 8)
    contexts = policy.begin(problems, [0] * 8)
    for context in contexts:
        context.cycle = context  # as finished chains' contexts can be: only the collector frees them
    assert policy.cache.slots == 8
    gc.disable()
    try:
        del contexts, context
        assert policy.cache.used == 8
        policy.cache.allocate()  # no free slot: collect the cycles first, then take one of theirs
    finally:
        gc.enable()
    assert policy.cache.slots == 8
