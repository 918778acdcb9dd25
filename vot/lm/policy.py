"""`SmallPolicy`: the project's own multimodal policy, decoded incrementally from a batch-resident KV cache.

Every chain's keys and values live in one `vot.lm.kv.SlotCache` (a slot per chain, per-row
lengths and positions); a context holds its slot, its length, the logits of its next token and
the token it ended its last thought with (not yet in the cache). A batched call arranges its
contexts' slots into rows 0..B-1 and feeds new positions at each row's own length under a 4-D
mask, so a batch computes what each chain would alone (a test checks batched == one-by-one), and a
new sketch's vision tokens are appended without re-running the prefix. Forks share their parent's
slot until they are fed (copy on write).

Decoding runs on the device for the whole batch: tokens are drawn by `vot.lm.sampling` (noise keyed
per chain and token, independent of batching), log-probs gathered in one op, and the host sees one
count per token (how many rows are still open) and reads the tokens at the end of the thought. Once
half the rows of a think have closed, the others go on alone (`vot.lm.kv.DecodeScratch.keep`): a
thought's last steps do not pay for the rows that already ended theirs.
"""
from __future__ import annotations

import gc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image

from tasks import Problem
from tasks.registry import family
from vision_encoder.patch import images_to_pixels
from vot.keys import chain_seed
from vot.lm.attention import use_decode_attention
from vot.lm.batching import duplicates, length_buckets, prefix_groups
from vot.lm.kv import DecodeScratch, Slot, SlotCache
from vot.lm.model import IMAGE_SLOT, PolicyModel
from vot.lm.sampling import key_tensor, sample
from vot.lm.sequences import context_ids
from vot.policy import Thought


@dataclass(eq=False)
class LMContext:
    """One chain's state inside `SmallPolicy`."""

    problem: Problem
    key: int  # `vot.keys.chain_seed` of the chain: keys its token noise
    greedy: bool
    lineage: tuple[int, ...]
    slot: Slot | None = None  # where its cached positions live (shared with forks until written)
    length: int = 0  # cached positions
    logits: torch.Tensor | None = None  # (V,) next-token logits, None before the prefix is fed
    drawn: int = 0  # tokens sampled so far (the counter of its token noise)
    pending: list[int] = field(default_factory=list)  # the end token of the last thought, fed by observe
    history: list[int] = field(default_factory=list)  # every position fed so far (IMAGE_SLOT for vision tokens)
    thoughts: int = 0  # thoughts written so far (the next one is headed by index token <thoughts + 1>)
    segment: int = 0  # the segment state after the last fed token (`WordTokenizer.segment_step`)


class SmallPolicy:
    """A `vot.policy.Policy` around a `PolicyModel`.

    Args:
        model: a `PolicyModel` or the directory of a saved one.
        temperature: sampling temperature (``begin(..., greedy=True)`` or 0 gives argmax).
        top_p: nucleus sampling mass.
        max_thought_tokens: a thought that reaches this length is closed as the answer.
        seed: with the problem id and the chain's sample index and forks, keys each chain's token
            noise (`vot.lm.sampling`): samples do not depend on batching, order or resuming.
        device: ``cpu``, ``cuda`` or ``cuda:N`` (bf16 on CUDA).

    The policy switches ``model``'s decoder to `vot.lm.attention.decode_attention` (sdpa everywhere
    but decode steps on CPU; the model still trains and saves as before).

    Log-probs are those of the model at temperature 1 over the tokens a policy may write (the
    structural tokens ``<pad> <unk> <bos> <img> </img>`` and the index tokens are masked), for
    each written token, end token included.
    """

    def __init__(self, model: PolicyModel | str | Path, *, temperature: float = 1.0, top_p: float = 1.0,
                 max_thought_tokens: int = 32, seed: int = 0, device: str = "cpu"):
        if temperature < 0 or not 0 < top_p <= 1:
            raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
        if not isinstance(model, PolicyModel):
            model = PolicyModel.from_pretrained(model, device=device)
        self.model = model.to(device).eval()
        use_decode_attention(self.model.decoder)  # sdpa, but the math path for decode steps on CPU
        if torch.device(device).type == "cuda":
            self.model.to(torch.bfloat16)
        self.tokenizer = model.tokenizer
        self.encoder = model.encoder  # observe turns each sketch into vision tokens with it
        self.temperature, self.top_p, self.seed = temperature, top_p, seed
        self.max_thought_tokens = max_thought_tokens
        self.compact_rows = 8  # a think over at least this many rows drops its closed rows once half have closed
        self.label = f"small-{model.spec.mode}"
        tok = self.tokenizer
        self._banned = torch.tensor([tok.pad, tok.unk, tok.bos, tok.img, tok.img_end, *tok.indices])  # never written
        config = self.model.decoder.config
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        self.cache = SlotCache(config.num_hidden_layers, config.num_key_value_heads, head_dim,
                               device=self.model.device, dtype=self.model.segments.weight.dtype)

    @property
    def device(self) -> torch.device:
        return self.model.device

    # --- the protocol ---------------------------------------------------------------------------
    @torch.no_grad()
    def begin(self, problems: Sequence[Problem], samples: Sequence[int], *, greedy: bool = False) -> list[LMContext]:
        if len(problems) != len(samples):
            raise ValueError(f"got {len(problems)} problems but {len(samples)} sample indices")
        task_id = self.model.spec.task
        contexts = []
        for problem, sample_index in zip(problems, samples):
            if family(problem.task) != family(task_id):  # its own task, or another version of it
                raise ValueError(f"this policy was trained on {task_id}, not {problem.task} ({problem.id})")
            lineage = (int(sample_index),)
            contexts.append(LMContext(problem, chain_seed(self.seed, problem.id, lineage),
                                      greedy or self.temperature == 0, lineage))
        if contexts:
            if self.cache.used:
                gc.collect()  # finished chains' contexts can sit in reference cycles
            if self.cache.used == 0 and self.cache.slots > 2 * len(contexts):
                self.cache.clear()  # the last set of chains is gone and was larger: give its memory back
            self._prefill(contexts)
        return contexts

    @torch.no_grad()
    def think(self, contexts: Sequence[LMContext]) -> list[Thought]:
        if not contexts:
            return []
        for context in contexts:
            if context.logits is None or context.pending:
                raise ValueError(f"{context.problem.id}: think called twice without observe in between")
        rows = self._claim(contexts)  # row order: contexts[rows[r]] sits in slot row r
        ordered = [contexts[i] for i in rows]
        batch, device, tok = len(ordered), self.device, self.tokenizer
        greedy_rows = [c.greedy for c in ordered]
        greedy = True if all(greedy_rows) else False if not any(greedy_rows) else torch.tensor(greedy_rows, device=device)
        keys = key_tensor([c.key for c in ordered], device)  # (B, 2)
        counters = torch.tensor([c.drawn for c in ordered], device=device)  # (B,)
        segments = torch.tensor([c.segment for c in ordered], device=device)  # (B,): thoughts never change it
        lengths = torch.tensor([c.length for c in ordered], device=device)  # (B,)
        written = torch.full((batch, self.max_thought_tokens), tok.pad, dtype=torch.long, device=device)
        logprobs = torch.zeros(batch, self.max_thought_tokens, device=device)
        open_rows = torch.ones(batch, dtype=torch.bool, device=device)
        banned = self._banned.to(device)
        logits = torch.stack([c.logits for c in ordered]).float()  # (B, V)
        span = max(c.length for c in ordered) + self.max_thought_tokens - 1  # the positions the think may reach
        embed = self.model.decoder.get_input_embeddings()
        scratch = None  # the decode steps' contiguous copy of the rows' cache, made at the first step
        decoding = None  # once closed rows have left the batch: the rows still decoding (B',), ascending
        count = fed = 0  # tokens drawn; steps fed since the scratch was made
        for t in range(self.max_thought_tokens):
            logits[:, banned] = float("-inf")
            tokens = sample(logits, greedy, keys, counters + t, temperature=self.temperature, top_p=self.top_p)  # (B',)
            drawn = torch.log_softmax(logits, -1).gather(1, tokens[:, None])[:, 0]  # (B',)
            at = slice(None) if decoding is None else decoding
            logprobs[at, t] = drawn
            written[at, t] = torch.where(open_rows, tokens, tok.pad)
            open_rows &= (tokens != tok.eot) & (tokens != tok.eos)
            count = t + 1
            still = int(open_rows.sum())  # the one transfer per token
            if t + 1 == self.max_thought_tokens or not still:
                break
            if still <= len(open_rows) // 2 and len(open_rows) >= self.compact_rows:  # closed rows leave the batch
                keep = open_rows.nonzero()[:, 0]  # (B',)
                decoding = keep if decoding is None else decoding[keep]
                tokens, lengths, segments, keys, counters = tokens[keep], lengths[keep], segments[keep], keys[keep], counters[keep]
                greedy = greedy[keep] if isinstance(greedy, torch.Tensor) else greedy
                open_rows = open_rows[keep]
                if scratch is not None:  # a kept row was fed at every step so far
                    scratch, fed = scratch.keep(keep.tolist(), fed), 0
            embeds = (embed(tokens) + self.model.segments(segments))[:, None]  # (B', 1, D)
            real = open_rows.long()  # a closed row's end token waits for observe
            if scratch is None:
                rows_now = list(range(batch)) if decoding is None else decoding.tolist()
                scratch = DecodeScratch(self.cache, rows_now, [ordered[r].length for r in rows_now], span)  # at t == 0: nothing fed yet
            logits = self._forward(embeds, lengths, real, scratch.span, scratch)[:, -1].float()  # (B', V)
            lengths = lengths + real
            fed += 1
        if scratch is not None:
            scratch.commit(fed)
        written, logprobs = written[:, :count].tolist(), logprobs[:, :count].tolist()
        out: list[Thought | None] = [None] * batch
        ends = (tok.eot, tok.eos)
        for row, context in enumerate(ordered):
            ids = written[row]
            size = next((i + 1 for i, token in enumerate(ids) if token in ends), count)
            ids, lps = ids[:size], logprobs[row][:size]
            ended = ids[-1] in ends
            fed = ids[:-1]  # every written token but the last was fed (the last: the end token, or the cut)
            context.history += fed
            context.length += len(fed)
            context.drawn += len(ids)
            context.pending = [ids[-1]] if ended else []
            context.logits = None
            context.thoughts += 1
            out[rows[row]] = Thought(tok.decode(ids[:-1] if ended else ids), lps,
                                     not ended or ids[-1] == tok.eos)
        return out

    @torch.no_grad()
    def observe(self, contexts: Sequence[LMContext], images: Sequence[Image.Image] | None,
                pixels: torch.Tensor | None = None) -> None:
        """Append each sketch's vision tokens (from ``pixels`` (B, 3, H, W) when given, else from
        ``images``), framed by ``<img>``, then the next thought's index token."""
        if not contexts:
            return
        if images is not None and len(images) != len(contexts):
            raise ValueError(f"got {len(images)} images for {len(contexts)} contexts")
        tokens = None
        if images is not None:
            tokens = self.encoder.encode_pixels(pixels) if pixels is not None else self._encode_each(images)
        heads, afters = [], []
        for context in contexts:
            heads.append(list(context.pending) + ([self.tokenizer.img] if images is not None else []))
            afters.append([self.tokenizer.index(context.thoughts + 1)])
            context.pending = []
        self._feed_chunks(list(contexts), heads, None if images is None else [tokens[i] for i in range(len(contexts))], afters)

    def fork(self, context: LMContext, branch: int) -> LMContext:
        lineage = context.lineage + (int(branch),)
        child = LMContext(context.problem, chain_seed(self.seed, context.problem.id, lineage), context.greedy, lineage,
                          drawn=context.drawn, pending=list(context.pending), thoughts=context.thoughts)
        self._share(child, context)
        return child

    # --- helpers --------------------------------------------------------------------------------
    def _prefill(self, contexts: list[LMContext]) -> None:
        """Feed each context its prompt, ``<img>``, its problem image's vision tokens, ``</img>`` and
        ``<1>`` (`vot.lm.batching`): identical inputs once, each group's shared prompt prefix once,
        the rest in groups of similar length."""
        tok = self.tokenizer
        prompts = [context_ids(c.problem, tok) + [tok.img] for c in contexts]
        images = [c.problem.image for c in contexts]  # rendered from the state on every access: once here
        firsts = duplicates([(tuple(p), image.size, image.tobytes()) for p, image in zip(prompts, images)])
        unique = [i for i, first in enumerate(firsts) if first == i]
        vision = self._encode_each([images[i] for i in unique])
        shared = [0] * len(unique)  # per unique context, the positions its group's root feeds
        for length, members in prefix_groups([prompts[i] for i in unique]):
            first = contexts[unique[members[0]]]
            root = LMContext(first.problem, 0, True, ())
            self._feed_chunks([root], [prompts[unique[members[0]]][:length]], None, [[]])
            for g in members:
                self._share(contexts[unique[g]], root)
                shared[g] = length
        rests = [prompts[i][skip:] for i, skip in zip(unique, shared)]
        groups = length_buckets([len(rest) + len(image) for rest, image in zip(rests, vision)])
        if len(groups) > 1:
            self._claim([contexts[unique[g]] for group in groups for g in group])  # each its slot, in group order: no moves
        start = 0
        for group in groups:
            self._feed_chunks([contexts[unique[g]] for g in group], [rests[g] for g in group], [vision[g] for g in group],
                              [[tok.index(1)] for _ in group], start)
            start += len(group)
        for i, first in enumerate(firsts):
            if first != i:
                self._share(contexts[i], contexts[first])

    @staticmethod
    def _share(context: LMContext, source: LMContext) -> None:
        """``context`` continues from ``source``'s fed positions, on its slot until it writes (forks,
        duplicate inputs and shared prefixes)."""
        context.slot, context.length, context.logits = source.slot, source.length, source.logits
        context.history, context.segment = list(source.history), source.segment
        if source.slot is not None:
            source.slot.sharers.add(context)

    def _encode_each(self, images: Sequence[Image.Image]) -> list[torch.Tensor]:
        """Vision tokens per image, (T, D) each; images batched by size."""
        out: list[torch.Tensor | None] = [None] * len(images)
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images):
            by_size.setdefault(image.size, []).append(i)
        for indices in by_size.values():
            pixels = images_to_pixels([images[i] for i in indices]).to(self.device)  # (N, 3, H, W)
            vision = self.model.encoder(pixels)  # (N, T, D)
            for row, i in enumerate(indices):
                out[i] = vision[row]
        return out

    def _claim(self, contexts: Sequence[LMContext], start: int = 0) -> list[int]:
        """Give every context a slot it may append to, in rows start..start+B-1; returns, for each
        row r, the index into ``contexts`` of the context in row start + r."""
        seen: set[int] = set()
        fresh = 0  # at most this many new slots: no slot, a longer sharer, or a slot twice in the call
        for c in contexts:
            fresh += self.cache.needs_copy(c) or id(c.slot) in seen
            seen.add(id(c.slot))
        self.cache.reserve(max(self.cache.used + fresh, start + len(contexts)), max(c.length for c in contexts) + 1)
        claimed: set[int] = set()
        for context in contexts:
            self.cache.writable(context, claimed)
        self.cache.arrange([c.slot for c in contexts], start)
        rows = [0] * len(contexts)
        for i, context in enumerate(contexts):
            rows[context.slot.index - start] = i
        return rows

    def _feed_chunks(self, contexts: list[LMContext], heads: list[list[int]], vision: list[torch.Tensor] | None,
                     afters: list[list[int]], start: int = 0) -> None:
        """Feed each context ``heads[i]``, then (if given) its vision tokens (T_i, D) and ``</img>``,
        then ``afters[i]``, in one batched forward over cache rows ``start``.. (see `_claim`); sets
        each context's next-token logits."""
        tok = self.tokenizer
        rows = self._claim(contexts, start)
        ids, segments = [], []
        for row in range(len(contexts)):
            i = rows[row]
            context = contexts[i]
            chunk = list(heads[i])
            if vision is not None:
                chunk += [IMAGE_SLOT] * len(vision[i]) + [tok.img_end]
            chunk += afters[i]
            state, row_segments = context.segment, []
            for token in chunk:
                segment, state = tok.segment_step(state, token)
                row_segments.append(segment)
            context.segment = state
            context.history += chunk
            ids.append(chunk)
            segments.append(row_segments)
        width = max(len(chunk) for chunk in ids)
        real = torch.tensor([len(chunk) for chunk in ids], device=self.device)  # (B,)
        ids_t = torch.tensor([chunk + [tok.pad] * (width - len(chunk)) for chunk in ids], device=self.device)  # (B, q)
        segments_t = torch.tensor([seg + [0] * (width - len(seg)) for seg in segments], device=self.device)
        pieces = None if vision is None else torch.cat([vision[rows[row]].to(self.device) for row in range(len(contexts))])[None]  # (1, ΣT, D)
        embeds = self.model.embed(ids_t, pieces, segments_t)  # (B, q, D)
        lengths = torch.tensor([contexts[rows[row]].length for row in range(len(contexts))], device=self.device)
        logits = self._forward(embeds, lengths, real, max(c.length for c in contexts) + width, start=start)  # (B, q, V)
        last = logits[torch.arange(len(contexts), device=self.device), real - 1].float()  # (B, V)
        for row in range(len(contexts)):
            context = contexts[rows[row]]
            context.length += len(ids[row])
            context.logits = last[row]

    def _forward(self, embeds: torch.Tensor, lengths: torch.Tensor, real: torch.Tensor, span: int,
                 scratch: DecodeScratch | None = None, start: int = 0) -> torch.Tensor:
        """embeds (B, q, D) fed to rows start..start+B-1 of the cache at each row's ``lengths`` (B,); the
        first ``real`` (B,) positions of a row are real (the rest write garbage past its length,
        which the next call overwrites); ``span`` (from the host, so no transfer) bounds every
        row's length + q -> logits (B, q, V). A decode step passes the think's ``scratch`` (its
        ``span``) instead of writing to the pool."""
        batch, width = embeds.shape[:2]
        device = embeds.device
        positions = lengths[:, None] + torch.arange(width, device=device)[None]  # (B, q)
        keys = torch.arange(span, device=device)  # (K,)
        visible = (keys[None, None] <= positions[:, :, None]) & (keys[None, None] < (lengths + real)[:, None, None])  # (B, q, K)
        dtype = embeds.dtype
        mask = torch.zeros(visible.shape, dtype=dtype, device=device).masked_fill(~visible, torch.finfo(dtype).min)
        cache = self.cache.view(batch, positions, span, start) if scratch is None else scratch.at(positions)
        out = self.model.decoder(inputs_embeds=embeds, attention_mask=mask[:, None], position_ids=positions,
                                 cache=cache, use_cache=True)
        return out.logits
