"""`SmallPolicy`: the project's own multimodal policy, decoded incrementally with a KV cache.

Each chain's context keeps its own key/value cache (per layer, (kv_heads, L, head_dim)), the
logits of its next token and the token it ended its last thought with (not yet in the cache). A
batched call stacks the caches of its chains with *middle padding*: chain i's L_i cached positions,
then zeros up to the longest, then the new positions; the attention mask hides the zeros and the
position ids continue each chain's own count. So a batch computes what each chain would alone
(a test checks batched == one-by-one), and a new sketch's vision tokens are appended to the cache
without re-running the prefix. Forking a context shares its cache tensors (they are never
modified in place).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image

import tasks
from tasks import Problem
from vision_encoder.patch import images_to_pixels
from vot.lm.model import IMAGE_SLOT, PolicyModel
from vot.lm.sequences import context_ids
from vot.keys import chain_seed
from vot.policy import Thought


@dataclass
class LMContext:
    """One chain's state inside `SmallPolicy`."""

    problem: Problem
    cache: list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values (kv_heads, L, head_dim)
    logits: torch.Tensor | None  # (V,) next-token logits, None before the prefix is fed
    generator: torch.Generator
    greedy: bool
    lineage: tuple[int, ...]
    pending: list[int] = field(default_factory=list)  # the end token of the last thought, fed by observe
    history: list[int] = field(default_factory=list)  # every position fed so far (IMAGE_SLOT for vision tokens)
    thoughts: int = 0  # thoughts written so far (the next one is headed by index token <thoughts + 1>)
    segment: int = 0  # the segment state after the last fed token (`WordTokenizer.segment_step`)

    @property
    def length(self) -> int:
        return self.cache[0][0].shape[1] if self.cache else 0


class SmallPolicy:
    """A `vot.policy.Policy` around a `PolicyModel`.

    Args:
        model: a `PolicyModel` or the directory of a saved one.
        temperature: sampling temperature (``begin(..., greedy=True)`` or 0 gives argmax).
        top_p: nucleus sampling mass.
        max_thought_tokens: a thought that reaches this length is closed as the answer.
        seed: with the problem id and the chain's sample index and forks, seeds each chain's own
            ``torch.Generator``: samples do not depend on batching, order or resuming.
        device: ``cpu`` or ``cuda`` (bf16 on cuda).

    Log-probs are those of the model at temperature 1 over the tokens a policy may write (the
    structural tokens ``<pad> <unk> <bos> <img> </img>`` are masked), for each written token, end
    token included.
    """

    def __init__(self, model: PolicyModel | str | Path, *, temperature: float = 1.0, top_p: float = 1.0,
                 max_thought_tokens: int = 32, seed: int = 0, device: str = "cpu"):
        if temperature < 0 or not 0 < top_p <= 1:
            raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
        if not isinstance(model, PolicyModel):
            model = PolicyModel.from_pretrained(model, device=device)
        self.model = model.to(device).eval()
        if device == "cuda":
            self.model.to(torch.bfloat16)
        self.tokenizer = model.tokenizer
        self.encoder = model.encoder  # the Reasoner's encoder: vision tokens come in through observe
        self.temperature, self.top_p, self.seed = temperature, top_p, seed
        self.max_thought_tokens = max_thought_tokens
        self.label = f"small-{model.spec.mode}"
        tok = self.tokenizer
        self._banned = torch.tensor([tok.pad, tok.unk, tok.bos, tok.img, tok.img_end, *tok.indices])  # never written

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
        for problem, sample in zip(problems, samples):
            if problem.task != task_id:
                raise ValueError(f"this policy was trained on {task_id}, not {problem.task} ({problem.id})")
            lineage = (int(sample),)
            generator = torch.Generator().manual_seed(chain_seed(self.seed, problem.id, lineage))
            contexts.append(LMContext(problem, [], None, generator, greedy or self.temperature == 0, lineage))
        chunks = []
        for context, vision in zip(contexts, self._encode_each([p.image for p in problems])):
            chunks.append(self._chunk(context, context_ids(context.problem, self.tokenizer) + [self.tokenizer.img], vision,
                                      [self.tokenizer.index(1)]))
        self._feed(contexts, chunks)
        return contexts

    @torch.no_grad()
    def think(self, contexts: Sequence[LMContext]) -> list[Thought]:
        if not contexts:
            return []
        for context in contexts:
            if context.logits is None or context.pending:
                raise ValueError(f"{context.problem.id}: think called twice without observe in between")
        batch = _Batch(self.model, list(contexts))
        written: list[list[int]] = [[] for _ in contexts]
        logprobs: list[list[float]] = [[] for _ in contexts]
        open_rows = list(range(len(contexts)))
        logits = torch.stack([c.logits for c in contexts])  # (B, V)
        logits[:, self._banned] = float("-inf")
        ends = (self.tokenizer.eot, self.tokenizer.eos)
        for _ in range(self.max_thought_tokens):
            tokens = self._sample(logits, contexts)  # (B,)
            log_softmax = torch.log_softmax(logits.float(), dim=-1)
            for row in list(open_rows):
                token = int(tokens[row])
                written[row].append(token)
                logprobs[row].append(float(log_softmax[row, token]))
                if token in ends:
                    open_rows.remove(row)
            if not open_rows:
                break
            embeds = torch.stack([self._embed_ids(c, [int(t)], record=False) for c, t in zip(contexts, tokens)])  # (B, 1, D)
            for row in open_rows:
                contexts[row].history.append(int(tokens[row]))
                contexts[row].segment = self.tokenizer.segment_step(contexts[row].segment, int(tokens[row]))[1]
            logits = batch.feed(embeds, [1 if r in open_rows else 0 for r in range(len(contexts))])[:, -1].float()  # (B, V)
            logits[:, self._banned] = float("-inf")
        batch.store()
        thoughts = []
        for context, ids, lps in zip(contexts, written, logprobs):
            ended = ids[-1] in ends
            text = self.tokenizer.decode(ids[:-1] if ended else ids)
            context.pending = [ids[-1]] if ended else []
            context.logits = None
            context.thoughts += 1
            is_answer = not ended or ids[-1] == self.tokenizer.eos
            thoughts.append(Thought(text, lps, is_answer))
        return thoughts

    @torch.no_grad()
    def observe(self, contexts: Sequence[LMContext], images: Sequence[Image.Image] | None,
                tokens: torch.Tensor | None) -> None:
        if not contexts:
            return
        if images is not None and len(images) != len(contexts):
            raise ValueError(f"got {len(images)} images for {len(contexts)} contexts")
        if tokens is None and images is not None:
            tokens = self._encode_each(images)
        chunks = []
        for i, context in enumerate(contexts):
            ids, after = list(context.pending), [self.tokenizer.index(context.thoughts + 1)]
            if images is None:
                chunks.append(self._chunk(context, ids + after, None))
            else:
                chunks.append(self._chunk(context, ids + [self.tokenizer.img], tokens[i], after))
            context.pending = []
        self._feed(list(contexts), chunks)

    def fork(self, context: LMContext, branch: int) -> LMContext:
        lineage = context.lineage + (int(branch),)
        generator = torch.Generator().manual_seed(chain_seed(self.seed, context.problem.id, lineage))
        return LMContext(context.problem, context.cache, context.logits, generator, context.greedy, lineage,
                         list(context.pending), list(context.history), context.thoughts, context.segment)

    # --- helpers --------------------------------------------------------------------------------
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

    def _embed_ids(self, context: LMContext, ids: list[int], record: bool = True) -> torch.Tensor:
        """Token + segment embeddings of ``ids`` fed next to ``context``: (q, D). ``record=False``
        (tokens being decoded, which a closed row may discard) leaves the segment state alone."""
        segments, state = [], context.segment
        for token in ids:
            segment, state = self.tokenizer.segment_step(state, token)
            segments.append(segment)
        if record:
            context.segment = state
            context.history += ids
        ids_t = torch.tensor(ids, dtype=torch.long, device=self.device)
        return self.model.decoder.get_input_embeddings()(ids_t) + self.model.segments(torch.tensor(segments, device=self.device))

    def _chunk(self, context: LMContext, ids: list[int], vision: torch.Tensor | None,
               after: list[int] = ()) -> torch.Tensor:
        """Embeddings of ``ids``, then (if given) the vision tokens and ``</img>``, then ``after``:
        (q, D). Recorded in the context's history."""
        parts = [self._embed_ids(context, ids)] if ids else []
        if vision is not None:
            context.history += [IMAGE_SLOT] * len(vision)
            context.segment = 0
            parts.append(vision.to(self.device, self.model.segments.weight.dtype))  # vision tokens replace the slot embeddings
            after = [self.tokenizer.img_end, *after]
        if after:
            parts.append(self._embed_ids(context, list(after)))
        return torch.cat(parts)  # (q, D)

    def _feed(self, contexts: list[LMContext], chunks: list[torch.Tensor]) -> None:
        width = max(len(c) for c in chunks)
        embeds = torch.zeros(len(chunks), width, chunks[0].shape[-1], device=self.device, dtype=chunks[0].dtype)
        for row, chunk in enumerate(chunks):
            embeds[row, :len(chunk)] = chunk
        batch = _Batch(self.model, contexts)
        logits = batch.feed(embeds, [len(c) for c in chunks])  # (B, q, V)
        batch.store()
        for row, (context, chunk) in enumerate(zip(contexts, chunks)):
            context.logits = logits[row, len(chunk) - 1].float()

    def _sample(self, logits: torch.Tensor, contexts: Sequence[LMContext]) -> torch.Tensor:
        """(B, V) -> (B,) token ids; each row sampled with its own chain's generator."""
        logits = logits.float().cpu()
        out = torch.empty(len(contexts), dtype=torch.long)
        for row, context in enumerate(contexts):
            if context.greedy:
                out[row] = int(torch.argmax(logits[row]))
                continue
            probs = torch.softmax(logits[row] / self.temperature, dim=-1)
            if self.top_p < 1.0:
                sorted_probs, order = torch.sort(probs, descending=True)
                keep = torch.cumsum(sorted_probs, 0) - sorted_probs < self.top_p  # always keeps the top token
                probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_probs[keep])
            out[row] = int(torch.multinomial(probs, 1, generator=context.generator))
        return out


class _Batch:
    """Chains' caches stacked with middle padding, fed new positions, and split back."""

    def __init__(self, model: PolicyModel, contexts: list[LMContext]):
        from transformers import DynamicCache

        self.model, self.contexts = model, contexts
        self.lengths = [c.length for c in contexts]
        self.past = max(self.lengths)
        self.new: list[int] = [0] * len(contexts)  # real new positions per chain (contiguous)
        device = model.device
        mask = torch.zeros(len(contexts), self.past, dtype=torch.long, device=device)
        for row, length in enumerate(self.lengths):
            mask[row, :length] = 1
        self.mask = mask
        self.cache = None
        if self.past:
            layers = []
            for layer in range(len(contexts[0].cache)):
                keys, values = [], []
                for context, length in zip(contexts, self.lengths):
                    k, v = context.cache[layer] if context.cache else (None, None)
                    keys.append(_pad_to(k, self.past, like=contexts, layer=layer))
                    values.append(_pad_to(v, self.past, like=contexts, layer=layer, values=True))
                layers.append((torch.stack(keys), torch.stack(values)))  # (B, H, past, d)
            self.cache = DynamicCache(ddp_cache_data=layers)

    def feed(self, embeds: torch.Tensor, real: list[int]) -> torch.Tensor:
        """embeds (B, q, D), the first ``real[i]`` positions of row i real -> logits (B, q, V)."""
        batch, width = embeds.shape[:2]
        step_mask = (torch.arange(width, device=embeds.device)[None] < torch.tensor(real, device=embeds.device)[:, None])
        positions = torch.tensor([length + new for length, new in zip(self.lengths, self.new)], device=embeds.device)
        position_ids = positions[:, None] + torch.arange(width, device=embeds.device)[None]  # (B, q)
        self.mask = torch.cat([self.mask, step_mask.long()], dim=1)
        out = self.model.decoder(inputs_embeds=embeds, attention_mask=self.mask, position_ids=position_ids,
                                 past_key_values=self.cache, use_cache=True)
        self.cache = out.past_key_values
        self._real = getattr(self, "_real", []) + [step_mask]
        for row, n in enumerate(real):
            self.new[row] += n
        return out.logits  # (B, q, V)

    def store(self) -> None:
        """Write each chain's grown cache back: its old positions plus its real new ones."""
        if not getattr(self, "_real", None):
            return
        real = torch.cat(self._real, dim=1)  # (B, fed)
        for row, context in enumerate(self.contexts):
            keep = torch.cat([torch.arange(self.lengths[row]),
                              self.past + torch.nonzero(real[row].cpu()).flatten()]).to(self.model.device)
            context.cache = [(layer.keys[row].index_select(1, keep), layer.values[row].index_select(1, keep))
                             for layer in self.cache.layers]


def _pad_to(tensor: torch.Tensor | None, length: int, *, like: list[LMContext], layer: int,
            values: bool = False) -> torch.Tensor:
    """(H, L, d) -> (H, length, d), zeros after the real positions."""
    if tensor is None:
        reference = next(c.cache[layer][1 if values else 0] for c in like if c.cache)
        return reference.new_zeros(reference.shape[0], length, reference.shape[2])
    if tensor.shape[1] == length:
        return tensor
    pad = tensor.new_zeros(tensor.shape[0], length - tensor.shape[1], tensor.shape[2])
    return torch.cat([tensor, pad], dim=1)
