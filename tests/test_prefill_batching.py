"""How `SmallPolicy.begin` batches its prefill: duplicates once, the shared prefix once, the rest by length."""
import itertools

import numpy as np
import pytest
import torch

import tasks
from vot.lm.batching import MIN_SHARED_PREFIX, common_prefix, duplicates, length_buckets, prefix_groups
from vot.lm.policy import SmallPolicy
from vot.lm.sequences import context_ids
from tests.test_small_policy import _model, _problems


def test_duplicates_point_at_the_first_occurrence():
    assert duplicates(["a", "b", "a", "c", "b"]) == [0, 1, 0, 3, 1]
    assert duplicates([]) == []


def test_common_prefix_stops_at_the_first_difference_or_the_shortest():
    assert common_prefix([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == 2
    assert common_prefix([[1, 2], [1, 2, 3]]) == 2
    assert common_prefix([[7], [8]]) == 0
    assert common_prefix([]) == 0


def test_prefix_groups_gather_sequences_that_open_alike():
    sequences = [[1, 2, 3, 4, 9], [5, 6, 7], [1, 2, 3, 4, 8, 8], [5, 6, 7, 1], [1, 2, 0], [4]]
    assert prefix_groups(sequences, min_shared=3) == [(4, [0, 2]), (3, [1, 3])]
    assert prefix_groups(sequences, min_shared=4) == [(4, [0, 2])]
    assert prefix_groups([[1, 2]], min_shared=1) == []


def _cost(groups, lengths, call_cost):
    return sum(call_cost + len(g) * max(lengths[i] for i in g) for g in groups)


def _brute_force(lengths, call_cost):
    """The cheapest split into runs of the sorted distinct lengths (an optimal grouping is such a split)."""
    distinct = sorted(set(lengths), reverse=True)
    best = None
    for cuts in itertools.product([False, True], repeat=len(distinct) - 1):
        groups, current = [], [distinct[0]]
        for length, cut in zip(distinct[1:], cuts):
            if cut:
                groups.append(current)
                current = []
            current.append(length)
        groups.append(current)
        cost = sum(call_cost + sum(lengths.count(x) for x in g) * g[0] for g in groups)
        best = cost if best is None else min(best, cost)
    return best


@pytest.mark.parametrize("seed", range(20))
def test_length_buckets_partition_the_indices_at_the_least_cost(seed):
    rng = np.random.default_rng(seed)
    lengths = [int(x) for x in rng.integers(100, 240, size=int(rng.integers(1, 12)))]
    call_cost = int(rng.integers(0, 300))
    groups = length_buckets(lengths, call_cost)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    assert all(g == sorted(g) for g in groups)
    assert _cost(groups, lengths, call_cost) == _brute_force(lengths, call_cost)


def test_length_buckets_at_the_extremes():
    lengths = [5, 9, 5, 7]
    assert length_buckets(lengths, call_cost=10**6) == [[0, 1, 2, 3]]
    assert length_buckets(lengths, call_cost=0) == [[1], [3], [0, 2]]
    assert length_buckets([]) == []


def _begin_logits(policy, problems, samples):
    contexts = policy.begin(problems, samples, greedy=True)
    return contexts, torch.stack([c.logits for c in contexts])


def test_a_set_begun_together_has_the_logits_and_cache_of_each_begun_alone():
    """The shared prefix is fed once for one row and the rest in length groups: every context
    ends up with the length, history, segment state, next-token logits and cached keys it gets alone."""
    policy = SmallPolicy(_model(), max_thought_tokens=5, seed=0)
    task = tasks.get("maze-mcq-v0")
    problems = [task.generate(np.random.default_rng(i), size=3 + i % 2) for i in range(8)]
    prompts = [context_ids(p, policy.tokenizer) for p in problems]
    assert common_prefix(prompts[::2]) >= MIN_SHARED_PREFIX  # one size: the opening sentences are shared
    calls = []
    forward = policy._forward
    policy._forward = lambda embeds, *args, **kw: calls.append(embeds.shape) or forward(embeds, *args, **kw)
    together, logits = _begin_logits(policy, problems, [0] * len(problems))
    assert [c[0] for c in calls[:2]] == [1, 1] and len(calls) > 3  # a prefix per size for one row, then length groups
    rows = [(c.slot.index, c.length) for c in together]
    keys = [policy.cache.data[:, :, index, :, :length].clone() for index, length in rows]
    for i, problem in enumerate(problems):
        alone = SmallPolicy(_model(), max_thought_tokens=5, seed=0)
        [context], single = _begin_logits(alone, [problem], [0])
        assert (context.length, context.history, context.segment) == (together[i].length, together[i].history, together[i].segment)
        torch.testing.assert_close(logits[i], single[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(keys[i], alone.cache.data[:, :, context.slot.index, :, :context.length], atol=1e-5, rtol=1e-5)


def test_duplicate_problems_are_fed_once_and_sample_their_own_chains():
    policy = SmallPolicy(_model(), max_thought_tokens=6, seed=0, temperature=3.0)
    problems = _problems("maze-mcq-v0", 2)
    flat = [problems[0]] * 3 + [problems[1]] * 2
    contexts = policy.begin(flat, [0, 1, 2, 0, 1])
    assert len({id(c.slot) for c in contexts}) == 2  # one slot per distinct problem until they write
    assert policy.cache.used == 2
    together = [t.text for t in policy.think(contexts)]
    assert len({id(c.slot) for c in contexts}) == 5  # each writer got its own slot
    alone = [policy.think(policy.begin([p], [s]))[0].text for p, s in zip(flat, [0, 1, 2, 0, 1])]
    assert together == alone
    assert len(set(together[:3])) > 1  # the copies still sample their own thoughts


def test_prompts_that_differ_only_in_their_image_share_the_whole_prompt():
    """The shared prefix may run to ``<img>``: each row then feeds only its vision tokens onward."""
    import dataclasses

    task = tasks.get("maze-mcq-v0")
    first, other = (task.generate(np.random.default_rng(i), size=4) for i in (0, 1))
    twin = dataclasses.replace(first, id=first.id + "-twin", state=other.state)  # same words, another maze
    policy = SmallPolicy(_model(), max_thought_tokens=5, seed=0)
    assert twin.image.tobytes() != first.image.tobytes()
    together, logits = _begin_logits(policy, [first, twin], [0, 0])
    assert together[0].slot is not together[1].slot
    for i, problem in enumerate([first, twin]):
        [alone], single = _begin_logits(SmallPolicy(_model(), max_thought_tokens=5, seed=0), [problem], [0])
        assert alone.history == together[i].history
        torch.testing.assert_close(logits[i], single[0], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(logits[0], logits[1])  # the images differ, so do the next-token logits
