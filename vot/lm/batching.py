"""How `SmallPolicy.begin` batches a set of prompts for the prefill.

A prefill is compute-bound: its cost is the positions it runs, padding included. Three rules
remove work that padding to the longest prompt would do (pure functions of token ids and lengths,
so they are tested without a model):

* `duplicates`: identical inputs (best-of-N chains of one problem) are fed once; the others share
  the first one's slot, as forks do.
* `prefix_groups`: prompts that open alike (one task and size: the fixed opening sentences, 57
  tokens of 109-235 on maze 5) form a group whose `common_prefix` is fed once, for one row, and
  shared; a set of mixed sizes has a group per size.
* `length_buckets`: the rest is fed in groups of similar length, so a 109-token prompt is not
  padded to 235.
"""
from __future__ import annotations

from typing import Hashable, Sequence

# a forward call's fixed cost in positions of one row (Python and kernel launches of every layer):
# more buckets are cheaper only while each saves more padding than this. Measured at batch 64, 1
# thread, maze bundle: 16, 64 and 128 all give 4.3 ms a chain at maze 5 (6.6 at maze 8), 512 gives
# 4.5 (7.1), one group 6.4 (10.4)
CALL_COST_POSITIONS = 128

# a shared prefix shorter than this is not fed on its own (its call costs more than it saves)
MIN_SHARED_PREFIX = 16


def duplicates(keys: Sequence[Hashable]) -> list[int]:
    """For each key, the index of its first occurrence (itself when it is the first)."""
    first: dict[Hashable, int] = {}
    return [first.setdefault(key, i) for i, key in enumerate(keys)]


def common_prefix(sequences: Sequence[Sequence[int]]) -> int:
    """The length of the longest prefix every sequence shares (0 for no sequences)."""
    if not sequences:
        return 0
    shortest = min(len(s) for s in sequences)
    first = sequences[0]
    for i in range(shortest):
        token = first[i]
        if any(s[i] != token for s in sequences):
            return i
    return shortest


def prefix_groups(sequences: Sequence[Sequence[int]], min_shared: int = MIN_SHARED_PREFIX) -> list[tuple[int, list[int]]]:
    """Groups of two or more sequences that agree on their first ``min_shared`` tokens, each with the
    length of the prefix all its members share (at least ``min_shared``): [(shared, indices), ...]."""
    by_opening: dict[tuple[int, ...], list[int]] = {}
    for i, sequence in enumerate(sequences):
        if len(sequence) >= min_shared:
            by_opening.setdefault(tuple(sequence[:min_shared]), []).append(i)
    return [(common_prefix([sequences[i] for i in members]), members)
            for members in by_opening.values() if len(members) > 1]


def length_buckets(lengths: Sequence[int], call_cost: int = CALL_COST_POSITIONS) -> list[list[int]]:
    """Split indices 0..n-1 into groups, each padded to its longest, that minimise the positions
    run (the sum of size x longest per group) plus ``call_cost`` per group: an exact dynamic
    programme over the sorted distinct lengths. Groups come longest first; within a group the
    indices keep their order."""
    if not lengths:
        return []
    distinct = sorted(set(lengths), reverse=True)  # d_0 > d_1 > ...
    count = {length: 0 for length in distinct}
    for length in lengths:
        count[length] += 1
    m = len(distinct)
    below = [0] * (m + 1)  # below[j]: how many lengths are among distinct[j:]
    for j in range(m - 1, -1, -1):
        below[j] = below[j + 1] + count[distinct[j]]
    # best[j]: the cost of the lengths distinct[j:], whose first group is padded to distinct[j]
    best, cut = [0] * (m + 1), [m] * (m + 1)
    for j in range(m - 1, -1, -1):
        best[j], cut[j] = min((call_cost + (below[j] - below[k]) * distinct[j] + best[k], k) for k in range(j + 1, m + 1))
    groups, j = [], 0
    while j < m:
        members = set(distinct[j:cut[j]])
        groups.append([i for i, length in enumerate(lengths) if length in members])
        j = cut[j]
    return groups
