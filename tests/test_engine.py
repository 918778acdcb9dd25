"""The batched engine: keyed device sampling and the batch-resident KV cache."""
import gc

import numpy as np
import pytest
import torch

import tasks
from vot.lm.kv import SlotCache
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
