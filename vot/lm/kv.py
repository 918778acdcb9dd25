"""A batch-resident KV cache: one tensor for every chain's keys and values, a slot per chain.

`SlotCache.data` is (layers, 2, slots, kv_heads, capacity, head_dim) (2: keys, values), grown in
chunks of slots and of positions. A chain's context holds a `Slot` handle and its own length; its
cached positions are ``data[:, :, slot.index, :, :length]``. A batched call over B contexts first
`arrange`s their slots into rows 0..B-1 (moving only the slots that are outside), so the decoder
reads ``data[:, :, :B]`` as a view: nothing is restacked per call or per token. (A call may take
rows start..start+B-1 instead: the prefill arranges a whole set once and feeds it group by group.)

Forks share. A fork is a second context on the same slot at the same length. A context may write
in place only at and after its own length, and only while no other live context on the slot is
longer (`SlotCache.writable`); otherwise it first copies its prefix to a fresh slot. So a
refinement snapshot or a beam fork costs nothing until it is fed, and the parent's prefix is never
overwritten. The copy takes along every sharer strictly shorter than the copied prefix (their
positions are the same there), so a rewound chain's earlier snapshots do not pin the slot of the
chain it replaced. A slot is released when the last context holding it is garbage collected (contexts can sit in
reference cycles, so the pool runs the collector before it grows); when
none is held, `clear` gives the memory back (the policy does so as it begins a new set of chains when
the pool holds more than twice the slots the new set needs, so a run's cache is at most twice as large
as its largest batch needs, not its whole history; a smaller pool is kept, since fresh memory costs page
faults: about 0.4 ms a MB on the 2-core machine).
"""
from __future__ import annotations

import gc
import weakref
from typing import Sequence

import torch
from transformers.cache_utils import Cache


class Slot:
    """A handle on one slot of a `SlotCache`; ``index`` moves when `SlotCache.arrange` moves it."""

    __slots__ = ("pool", "index", "sharers", "__weakref__")

    def __init__(self, pool: "SlotCache", index: int):
        self.pool, self.index = pool, index
        self.sharers: weakref.WeakSet = weakref.WeakSet()  # the contexts that read this slot

    def __del__(self):
        pool = self.pool
        if pool is not None:
            pool._release(self.index)


class SlotCache:
    """Keys and values of every chain of one policy (see the module docstring)."""

    def __init__(self, layers: int, kv_heads: int, head_dim: int, *, device, dtype,
                 slot_chunk: int = 8, length_chunk: int = 256):
        self.shape = (layers, 2, kv_heads, head_dim)
        self.device, self.dtype = torch.device(device), dtype
        self.slot_chunk, self.length_chunk = slot_chunk, length_chunk
        self.data = torch.zeros(layers, 2, 0, kv_heads, 0, head_dim, device=self.device, dtype=dtype)
        self.owners: list[weakref.ref | None] = []  # the Slot at each index (None: free)
        self.extent: list[int] = []  # per index, a bound on the positions ever written there
        self._scratch = torch.zeros(0, device=self.device, dtype=dtype)  # `DecodeScratch`'s memory, kept between thinks

    @property
    def slots(self) -> int:
        return self.data.shape[2]

    @property
    def used(self) -> int:
        """Slots held by live contexts."""
        return len(self.owners) - len(self._free())

    @property
    def capacity(self) -> int:
        return self.data.shape[4]

    # --- slots ----------------------------------------------------------------------------------
    def allocate(self) -> Slot:
        """A fresh slot (its contents are garbage until written)."""
        free = self._free()
        if not free:
            gc.collect()  # contexts of finished chains can sit in reference cycles: free their slots first
            free = self._free()
        if not free:
            self.reserve(self.slots + 1, self.capacity)  # grows by half, in chunks
            free = self._free()
        slot = Slot(self, free[0])
        self.owners[free[0]] = weakref.ref(slot)
        return slot

    def _free(self) -> list[int]:
        """Indices no live context holds (released, or its handle already collected)."""
        return [i for i, owner in enumerate(self.owners) if owner is None or owner() is None]

    def _release(self, index: int) -> None:
        if index < len(self.owners):
            self.owners[index] = None

    def clear(self) -> None:
        """Free the whole tensor; only while no context holds a slot."""
        if self.used:
            raise RuntimeError(f"clear() while {self.used} slots are held")
        layers, two, heads, dim = self.shape
        self.data = torch.zeros(layers, two, 0, heads, 0, dim, device=self.device, dtype=self.dtype)
        self.owners, self.extent = [], []
        self._scratch = self._scratch[:0].clone()

    def scratch(self, numel: int) -> torch.Tensor:
        """A flat buffer of at least ``numel`` elements for `DecodeScratch`, reused between thinks
        (fresh memory costs page faults: 22 ms for the 48 MB of a batch-64 maze-5 think)."""
        if self._scratch.numel() < numel:
            self._scratch = torch.empty(max(numel, self._scratch.numel() * 3 // 2), device=self.device, dtype=self.dtype)
        return self._scratch[:numel]

    def reserve(self, slots: int, length: int) -> None:
        """Grow (in chunks) to hold at least ``slots`` slots of ``length`` positions."""
        if slots <= self.slots and length <= self.capacity:
            return
        grow = lambda have, need, chunk: have if need <= have else -(-max(need, have + have // 2) // chunk) * chunk
        new_slots = grow(self.slots, slots, self.slot_chunk)
        new_capacity = grow(self.capacity, length, self.length_chunk)
        layers, two, heads, dim = self.shape
        data = torch.zeros(layers, two, new_slots, heads, new_capacity, dim, device=self.device, dtype=self.dtype)
        data[:, :, :self.slots, :, :self.capacity] = self.data
        self.data = data
        self.owners += [None] * (new_slots - len(self.owners))
        self.extent += [0] * (new_slots - len(self.extent))

    def copy_prefix(self, source: Slot, target: Slot, length: int) -> None:
        """target[:length] = source[:length]."""
        if length:
            self.data[:, :, target.index, :, :length] = self.data[:, :, source.index, :, :length]
        self.extent[target.index] = length

    def writable(self, context, claimed: set[int]) -> None:
        """Give ``context`` (with ``.slot`` and ``.length``) a slot it may append to, copying its
        prefix when another live context on its slot is longer or the slot is ``claimed`` by
        another writer of the same call. Adds the slot's index to ``claimed``."""
        slot = context.slot
        if slot is None:
            context.slot = slot = self.allocate()
            slot.sharers.add(context)
        elif id(slot) in claimed or any(other.length > context.length for other in slot.sharers if other is not context):
            fresh = self.allocate()
            self.reserve(self.slots, context.length)
            self.copy_prefix(context.slot, fresh, context.length)
            # the context and every sharer strictly shorter move: their prefixes are fresh's too
            # (a sharer as long may be another writer of this call, so it stays)
            for other in [context] + [o for o in slot.sharers if o.length < context.length]:
                slot.sharers.discard(other)
                other.slot = fresh
                fresh.sharers.add(other)
            slot = fresh
        claimed.add(id(slot))

    def needs_copy(self, context) -> bool:
        """Whether `writable` may give ``context`` a fresh slot (no slot yet, or a longer sharer)."""
        slot = context.slot
        return slot is None or any(other.length > context.length for other in slot.sharers if other is not context)

    def arrange(self, slots: Sequence[Slot], start: int = 0) -> None:
        """Move the distinct ``slots`` into indices start..start+len(slots)-1 (in any order), swapping
        out whatever sat there (each moved slot's written extent is copied)."""
        rows = range(start, start + len(slots))
        inside = {s.index for s in slots if s.index in rows}
        targets = (i for i in rows if i not in inside)
        source, target = [], []
        for slot in (s for s in slots if s.index not in rows):
            to = next(targets)
            displaced = self.owners[to]() if self.owners[to] is not None else None
            source.append(slot.index)
            target.append(to)
            if displaced is not None:  # swap the two slots
                source.append(to)
                target.append(slot.index)
                displaced.index = slot.index
            self.owners[slot.index] = self.owners[to] if displaced is not None else None
            self.owners[to] = weakref.ref(slot)
            self.extent[slot.index], self.extent[to] = (self.extent[to] if displaced is not None else 0), self.extent[slot.index]
            slot.index = to
        length = max((self.extent[i] for i in target), default=0)
        if source and length:
            src = torch.tensor(source, device=self.device)
            self.data[:, :, target, :, :length] = self.data[:, :, src, :, :length]

    def view(self, rows: int, positions: torch.Tensor, length: int, start: int = 0) -> "SlotView":
        """A transformers `Cache` over rows start..start+rows-1 that writes new keys at ``positions``
        (B, q) and attends over the first ``length`` positions."""
        self.reserve(start + rows, length)
        self.written(rows, length, start)
        return SlotView(self, rows, positions, length, start)

    def written(self, rows: int | Sequence[int], length: int, start: int = 0) -> None:
        """Rows start..start+rows-1 (or the listed ``rows``) may hold written positions below ``length``
        (`arrange` copies that much)."""
        for row in (range(start, start + rows) if isinstance(rows, int) else rows):
            self.extent[row] = max(self.extent[row], length)


def _write_rows(keys: torch.Tensor, values: torch.Tensor, row_ids: torch.Tensor, positions: torch.Tensor,
                key_states: torch.Tensor, value_states: torch.Tensor) -> None:
    """keys, values (rows, H, C, d) get key_states, value_states (B, H, q, d) at rows ``row_ids`` (B, 1), ``positions`` (B, q)."""
    keys[row_ids, :, positions] = key_states.transpose(1, 2).to(keys.dtype)  # (B, q, H, d)
    values[row_ids, :, positions] = value_states.transpose(1, 2).to(values.dtype)


class SlotView(Cache):
    """The transformers `Cache` one forward call sees: ``update`` writes the new keys and values
    into the pool at each row's own positions and returns the rows' first ``length`` positions."""

    def __init__(self, pool: SlotCache, rows: int, positions: torch.Tensor, length: int, start: int = 0):
        super().__init__(layers=[])
        self.pool, self.rows, self.length, self.start = pool, rows, length, start
        self.positions = positions  # (B, q)
        self.row_ids = torch.arange(start, start + rows, device=positions.device)[:, None]  # (B, 1)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        """key_states, value_states (B, kv_heads, q, head_dim) -> the rows' keys and values, (B, kv_heads, length, head_dim)."""
        keys, values = self.pool.data[layer_idx, 0], self.pool.data[layer_idx, 1]  # (S, H, C, d)
        _write_rows(keys, values, self.row_ids, self.positions, key_states, value_states)
        rows = slice(self.start, self.start + self.rows)
        return keys[rows, :, :self.length], values[rows, :, :self.length]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.length

    def __len__(self) -> int:
        return self.pool.shape[0]


class DecodeScratch(Cache):
    """Rows of a `SlotCache` copied into one contiguous (layers, 2, B, kv_heads, span, head_dim)
    tensor for the decode steps of one think: each step writes its keys at the rows' ``positions`` and
    attends over the whole ``span`` (the caller masks what a row must not see), so attention reads
    contiguous keys instead of a strided slice of the pool (`vot.lm.attention`). `commit` copies the
    positions the steps fed back into the pool; `keep` hands the rows still decoding to a smaller scratch.

    Args:
        pool: the slot cache.
        rows: B, for the pool's rows 0..B-1 (as a call arranges them), or the pool rows to hold, in order.
        lengths: each row's cached positions; step k feeds row r at ``lengths[r] + k``.
        span: the positions the think may reach (the longest length + its decode steps).
    """

    def __init__(self, pool: SlotCache, rows: int | Sequence[int], lengths: Sequence[int], span: int):
        super().__init__(layers=[])
        self.pool_rows = list(range(rows)) if isinstance(rows, int) else list(rows)
        self.rows, self.lengths = len(self.pool_rows), list(lengths)
        if len(self.lengths) != self.rows:
            raise ValueError(f"got {len(self.lengths)} lengths for {self.rows} rows")
        pool.reserve(max(self.pool_rows, default=-1) + 1, span)
        self.pool, self.span = pool, span
        layers, two, heads, dim = pool.shape
        cached = max(self.lengths, default=0)
        self.data = pool.scratch(layers * two * self.rows * heads * span * dim).view(layers, two, self.rows, heads, span, dim)
        pool_ids = torch.tensor(self.pool_rows, dtype=torch.long, device=pool.device)  # (B,)
        self._pool_ids = pool_ids[:, None]  # (B, 1): where `commit` puts each row
        self._source = slice(0, self.rows) if self.pool_rows == list(range(self.rows)) else pool_ids  # a slice copies faster
        self.data[..., :cached, :] = pool.data[:, :, self._source, :, :cached]
        self.data[..., cached:, :] = 0  # never garbage: a masked NaN would still poison the softmax's product
        self.row_ids = torch.arange(self.rows, device=pool.device)[:, None]  # (B, 1)
        self.positions: torch.Tensor | None = None

    def at(self, positions: torch.Tensor) -> "DecodeScratch":
        """The next forward writes at ``positions`` (B, q)."""
        self.positions = positions
        return self

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        """key_states, value_states (B, kv_heads, q, head_dim) -> every row's keys and values, (B, kv_heads, span, head_dim)."""
        keys, values = self.data[layer_idx, 0], self.data[layer_idx, 1]  # (B, H, span, d), contiguous
        _write_rows(keys, values, self.row_ids, self.positions, key_states, value_states)
        return keys, values

    def commit(self, steps: int) -> None:
        """Copy each row's positions lengths[r] .. lengths[r] + steps - 1 back into the pool: every
        position the first ``steps`` steps fed (a row that closed earlier copies what the scratch held
        past its length, garbage the next write replaces; below its length nothing is touched)."""
        if steps:
            device = self.pool.device
            positions = torch.tensor(self.lengths, device=device)[:, None] + torch.arange(steps, device=device)  # (B, steps)
            self.pool.data[:, :, self._pool_ids, :, positions] = self.data[:, :, self.row_ids, :, positions]
        self.pool.written(self.pool_rows, max(self.lengths, default=0) + steps)

    def keep(self, rows: Sequence[int], steps: int) -> "DecodeScratch":
        """After ``steps`` steps in which ``rows`` (indices into this scratch's rows, ascending) were
        fed at every step: commit, and return a scratch over only those rows, copied back from the
        pool. It reuses this scratch's memory, so this one must not be used again."""
        self.commit(steps)
        return DecodeScratch(self.pool, [self.pool_rows[r] for r in rows], [self.lengths[r] + steps for r in rows], self.span)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.span

    def __len__(self) -> int:
        return self.pool.shape[0]
