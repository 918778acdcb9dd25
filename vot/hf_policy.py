"""`HFPolicy`: a local Hugging Face image-text-to-text checkpoint (LLaVA- or Qwen2-VL-style) as a Policy.

Each chain's context is the chat conversation itself: a user turn with the problem image and prompt,
then one assistant turn per thought and one user turn per observed sketch (the image plus
``HFPolicy.SKETCH_TEXT``).

Two decode paths give the same thoughts (up to floating-point differences between a padded batch and
a cache, which can flip a near-tied token, more likely in bf16):

- *incremental* (LLaVA-style models, whose positions are one-dimensional; the default for them):
  each chain keeps its KV cache (a transformers ``DynamicCache``) and the token ids it holds. A
  ``think`` renders the conversation, keeps the cache up to the longest common prefix with the new
  ids (cut back to the start of an image whose tokens it would split), prefills only the rest with
  only the new images' pixels. All chains of a think run together: their caches are padded into one
  batch cache for the thought (one prefill forward, then one forward per token) and split back after.
  Earlier steps are never re-read, so a chain's cost grows linearly with its length.
- *re-prefill* (every other model, e.g. Qwen2-VL's multimodal rotary positions): all conversations
  re-rendered and one left-padded, batched ``model.generate``; the cost of a step grows with the
  conversation.

Randomness. ``generate`` has no ``generator`` argument and samples with the global RNG, so
``generate`` always runs *greedy* here and the sampling is done by a logits processor
(`_ChainSampler`) that, for every sampled row, applies temperature and top-p to the raw logits, draws
the token with that row's own ``torch.Generator`` and masks every other token to ``-inf`` (so
generate's argmax picks the drawn token). Each row's generator is seeded from
(seed, problem id, step, sample index, fork branches), the key `SimulatedPolicy` uses, so a chain's
thoughts do not depend on batching, order or other chains, and the global RNG is never touched.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from transformers import LogitsProcessor, StoppingCriteria

import tasks
from tasks import Problem
from tasks.parsing import parse_actions
from vot.policy import Thought

# Tokens that end an assistant turn in common chat formats (used when present in the vocabulary).
_END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>", "</s>")


@dataclass
class HFContext:
    """One chain's conversation (chat messages, images inline) and its sampling key."""

    problem: Problem
    task: Any
    messages: list[dict]
    lineage: tuple[int, ...]  # sample index, then one entry per fork
    greedy: bool = False
    step: int = 0  # thoughts produced so far
    token_ids: list[list[int]] = field(default_factory=list)  # generated ids of each thought (incl. its stop token)
    cache: Any = None  # incremental decoding: the chain's DynamicCache ...
    cached_ids: list[int] = field(default_factory=list)  # ... the token ids whose keys and values it holds ...
    cached_images: list[str] = field(default_factory=list)  # ... and digests of the images among them, in order

    @property
    def num_images(self) -> int:
        """Images in the conversation so far (the problem image plus every observed sketch)."""
        return sum(1 for m in self.messages for c in m["content"] if c.get("type") == "image")


class HFPolicy:
    """A local image-text-to-text checkpoint that reads the problem image and every sketch itself.

    Args:
        path: directory holding a checkpoint loadable with ``AutoProcessor`` and
            ``AutoModelForImageTextToText`` (``local_files_only``); the processor needs a chat template.
        temperature: sampling temperature; ``0`` means greedy decoding.
        top_p: nucleus sampling mass in (0, 1].
        max_new_tokens: tokens per thought at most.
        seed: base of every chain's sampling seed (a non-negative integer).
        device: torch device; the model runs in bfloat16 on CUDA and float32 elsewhere.
        incremental: keep each chain's KV cache between thoughts (module docstring); ``None``: on for
            the model types in ``INCREMENTAL_MODELS``, whose image tokens and positions allow it.

    A thought stops at an end-of-turn/EOS token or at the first newline after some text (leading
    newlines are skipped). It is an answer when it states one ("The answer is ..." that the task can
    parse), when the model ended its turn without naming an action to sketch, or when it is empty.
    Log-probs are of the generated tokens (the stop token included) under the model's raw logits
    (log-softmax before temperature / top-p). The model's own vision tower reads the sketches
    (``encoder`` is ``None``: no separate encoder call is counted).
    """

    encoder = None
    INCREMENTAL_MODELS = ("llava",)
    SKETCH_TEXT = "Sketch of the state after that step."
    CONTINUE_TEXT = "Continue."  # user turn after a thought when the sketcher draws nothing

    def __init__(self, path: str | Path, *, temperature: float = 1.0, top_p: float = 1.0, max_new_tokens: int = 48,
                 seed: int = 0, device: str | torch.device = "cpu", incremental: bool | None = None):
        from transformers import AutoModelForImageTextToText, AutoProcessor, GenerationConfig

        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"HFPolicy: checkpoint directory {str(path)!r} does not exist")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.path = path
        self.label = f"hf:{path.resolve().name}"
        self.temperature, self.top_p = float(temperature), float(top_p)
        self.max_new_tokens, self.seed = int(max_new_tokens), int(seed)
        self.device = torch.device(device)
        self.dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32

        from imagegen.quiet import quiet_loading

        with quiet_loading():
            self.processor = AutoProcessor.from_pretrained(str(path), local_files_only=True)
        if not getattr(self.processor, "chat_template", None):
            raise ValueError(f"HFPolicy: the processor in {str(path)!r} has no chat template "
                             "(chat_template.jinja / chat_template.json); one is needed to format the conversation")
        self.tokenizer = self.processor.tokenizer
        self.tokenizer.padding_side = "left"
        with quiet_loading():
            self.model = AutoModelForImageTextToText.from_pretrained(str(path), local_files_only=True, dtype=self.dtype)
        self.model.to(self.device).eval()

        model_type = getattr(self.model.config, "model_type", "")
        self.incremental = model_type in self.INCREMENTAL_MODELS if incremental is None else bool(incremental)
        if self.incremental and model_type not in self.INCREMENTAL_MODELS:
            raise ValueError(f"HFPolicy: incremental decoding supports {', '.join(self.INCREMENTAL_MODELS)} models, "
                             f"not {model_type!r}; pass incremental=False")
        self.stop_ids = self._stop_ids()
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.convert_ids_to_tokens(self.stop_ids[0])
        # Only these settings: the checkpoint's own sampling defaults (top_k, repetition_penalty, ...)
        # would otherwise be merged into every generate call.
        self.model.generation_config = GenerationConfig(
            bos_token_id=self.tokenizer.bos_token_id, eos_token_id=list(self.stop_ids),
            pad_token_id=self.tokenizer.pad_token_id)
        self._newline: dict[int, bool] = {}

    def _stop_ids(self) -> list[int]:
        ids = []
        eos = self.model.generation_config.eos_token_id
        ids += list(eos) if isinstance(eos, (list, tuple)) else ([eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
        vocab = self.tokenizer.get_vocab()
        ids += [vocab[t] for t in _END_OF_TURN_TOKENS if t in vocab]
        ids = sorted(set(int(i) for i in ids))
        if not ids:
            raise ValueError(f"HFPolicy: {str(self.path)!r} defines no EOS / end-of-turn token")
        return ids

    # --- Policy protocol -----------------------------------------------------------------------
    def begin(self, problems: Sequence[Problem], samples: Sequence[int], *, greedy: bool = False) -> list[HFContext]:
        """One context per (problems[i], samples[i]): a user turn with the problem image and prompt."""
        if len(problems) != len(samples):
            raise ValueError(f"got {len(problems)} problems but {len(samples)} sample indices")
        contexts = []
        for problem, sample in zip(problems, samples):
            messages = [{"role": "user", "content": [{"type": "image", "image": problem.image},
                                                     {"type": "text", "text": problem.prompt}]}]
            contexts.append(HFContext(problem, tasks.get(problem.task), messages, (int(sample),),
                                      greedy=bool(greedy) or self.temperature == 0.0))
        return contexts

    def fork(self, context: HFContext, branch: int) -> HFContext:
        """A copy of the conversation whose future samples differ by ``branch`` (images are shared, the KV cache is not)."""
        # The copy starts without a KV cache: its first think prefills the conversation once. Sharing the
        # parent's would need a copy per fork, and the reasoner forks a snapshot at every step of a
        # refinable chain, most never continued.
        messages = [{**m, "content": [dict(c) for c in m["content"]]} for m in context.messages]
        return HFContext(context.problem, context.task, messages, context.lineage + (int(branch),), context.greedy,
                         context.step, [list(t) for t in context.token_ids])

    @torch.no_grad()
    def think(self, contexts: Sequence[HFContext]) -> list[Thought]:
        """Next thought of every context: one batched, left-padded ``generate`` over all conversations."""
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        if not contexts:
            return []
        for context in contexts:
            if context.messages[-1]["role"] == "assistant":
                raise ValueError(f"{context.problem.id}: think called twice without observe in between")
        if self.incremental:
            return [self._record(context, ids, logprobs)
                    for context, (ids, logprobs) in zip(contexts, self._think_incrementally(contexts))]
        inputs = self.processor.apply_chat_template(
            [c.messages for c in contexts], add_generation_prompt=True, tokenize=True, return_dict=True,
            return_tensors="pt", processor_kwargs={"padding": True})
        inputs = {k: (v.to(self.device, self.dtype) if torch.is_floating_point(v) else v.to(self.device))
                  if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
        prompt_len = inputs["input_ids"].shape[1]
        generators = [None if c.greedy else self._generator(c) for c in contexts]
        processors = LogitsProcessorList()
        if any(g is not None for g in generators):
            processors.append(_ChainSampler(generators, self.temperature, self.top_p))
        config = GenerationConfig(max_new_tokens=self.max_new_tokens, do_sample=False, eos_token_id=list(self.stop_ids),
                                  pad_token_id=self.tokenizer.pad_token_id, bos_token_id=self.tokenizer.bos_token_id,
                                  output_logits=True, return_dict_in_generate=True)
        out = self.model.generate(**inputs, generation_config=config, logits_processor=processors,
                                  stopping_criteria=StoppingCriteriaList([_NewlineStop(self, prompt_len)]))
        generated = out.sequences[:, prompt_len:]
        logprobs = torch.stack([torch.log_softmax(logits.float(), dim=-1).gather(1, generated[:, i:i + 1].to(logits.device))[:, 0]
                                for i, logits in enumerate(out.logits)], dim=1).cpu()  # (B, T), raw logits
        return [self._record(context, generated[row].tolist(), logprobs[row].tolist())
                for row, context in enumerate(contexts)]

    def _record(self, context: HFContext, ids: list[int], logprobs: list[float]) -> Thought:
        """Cut the generated ``ids`` to a thought, append it to the conversation and return it."""
        keep, text, ended = self._cut(ids)
        is_answer = (not text or self._states_answer(context, text)
                     or (ended and parse_actions(text, context.task.actions) is None))
        context.messages.append({"role": "assistant", "content": [{"type": "text", "text": text}]})
        context.token_ids.append(ids[:keep])
        context.step += 1
        return Thought(text, logprobs[:keep], bool(is_answer))

    def _think_incrementally(self, contexts: Sequence[HFContext]) -> list[tuple[list[int], list[float]]]:
        """One thought of every chain from its own cache, all chains in one batch.

        Each chain keeps the longest prefix of its conversation that its cache holds (`_reusable`) and
        feeds only the rest. The kept caches (lengths c_b) are left-padded into one batch cache; the
        new tokens (n_b) follow, left-padded to the longest, so a row reads
        ``[pad | cached | pad | new]`` with the padding masked out and its own positions (c_b + j).
        Then every chain decodes one token per batched forward, with the same sampling and stopping
        rules as the re-prefill path; a chain that has stopped keeps being fed (its outputs ignored)
        until the last one stops. Each chain gets back its own rows of the batch cache, cut to the
        tokens it used.
        """
        from transformers import DynamicCache

        plans = [self._reusable(c) for c in contexts]  # (ids, image digests, kept prefix length, new pixels)
        kept = [plan[2] for plan in plans]
        fed = [len(plan[0]) - plan[2] for plan in plans]
        width, span = max(kept), max(fed)
        cache = DynamicCache() if width == 0 else DynamicCache(ddp_cache_data=self._stack([c.cache for c in contexts], kept, width))
        feed = torch.tensor([[self.tokenizer.pad_token_id] * (span - n) + ids[c:] for (ids, _, c, _), n in zip(plans, fed)],
                            device=self.device)  # (B, span)
        mask = torch.tensor([[0] * (width - c) + [1] * c + [0] * (span - n) + [1] * n for c, n in zip(kept, fed)],
                            device=self.device)  # (B, width + span)
        positions = torch.tensor([[1] * (span - n) + list(range(c, c + n)) for c, n in zip(kept, fed)],
                                 device=self.device)  # (B, span); padding gets 1, as generate gives it
        pixels = [plan[3] for plan in plans if plan[3] is not None]
        pixels = torch.cat(pixels).to(self.device, self.dtype) if pixels else None  # new images, in row order
        out = self.model(input_ids=feed, pixel_values=pixels, cache=cache, use_cache=True, attention_mask=mask,
                         position_ids=positions)
        generators = [None if c.greedy else self._generator(c) for c in contexts]
        generated, logprobs = [[] for _ in contexts], [[] for _ in contexts]
        done = [False] * len(contexts)
        following = positions[:, -1:] + 1  # (B, 1): each row's next position
        while True:
            logits = out.logits[:, -1].float()  # (B, V) raw
            for row, generator in enumerate(generators):
                if not done[row]:
                    token, logprob = self._pick(logits[row], generator)
                    generated[row].append(token)
                    logprobs[row].append(logprob)
                    done[row] = self._stops(generated[row])
            if all(done):
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            out = self.model(input_ids=torch.tensor([[g[-1]] for g in generated], device=self.device), cache=cache,
                             use_cache=True, attention_mask=mask, position_ids=following)
            following = following + 1
        for row, (context, (ids, images, c, _)) in enumerate(zip(contexts, plans)):
            # row b holds its cache at [width - c_b, width), its new tokens at [width + span - n_b,
            # width + span) and the decoded ones it was fed after them (all but its last token's)
            used = torch.cat([torch.arange(width - c, width), torch.arange(width + span - fed[row], width + span),
                              torch.arange(width + span, width + span + len(generated[row]) - 1)]).to(self.device)
            context.cache = DynamicCache(ddp_cache_data=[
                (layer.keys[row:row + 1].index_select(2, used), layer.values[row:row + 1].index_select(2, used))
                for layer in cache.layers])
            context.cached_ids = ids + generated[row][:-1]  # the last token's keys are not computed yet
            context.cached_images = images
        return list(zip(generated, logprobs))

    def _reusable(self, context: HFContext) -> tuple[list[int], list[str], int, torch.Tensor | None]:
        """What a think of one chain must feed: (the conversation's token ids, its image digests, how
        many leading ids the chain's cache holds and keeps, the pixels of the images after those).
        The kept prefix never splits an image's tokens and never holds an image since replaced; the
        cache is cropped to it (dropped when it is empty)."""
        inputs = self.processor.apply_chat_template([context.messages], add_generation_prompt=True, tokenize=True,
                                                    return_dict=True, return_tensors="pt")
        ids = inputs["input_ids"][0].tolist()
        image_token = self.model.config.image_token_id
        spans, i = [], 0  # [start, end) of each image's run of tokens
        while i < len(ids):
            if ids[i] == image_token:
                end = i
                while end < len(ids) and ids[end] == image_token:
                    end += 1
                spans.append((i, end))
                i = end
            else:
                i += 1
        common, limit = 0, min(len(ids) - 1, len(context.cached_ids))  # feed at least one token
        while common < limit and ids[common] == context.cached_ids[common]:
            common += 1
        images = [_digest(c["image"]) for m in context.messages for c in m["content"] if c.get("type") == "image"]
        for k, (start, end) in enumerate(spans):  # an image the cache holds must be this one, and whole
            if start < common and (k >= len(context.cached_images) or context.cached_images[k] != images[k] or common < end):
                common = start
                break
        if context.cache is None or common == 0:
            context.cache, common = None, 0
        else:
            context.cache.crop(common - context.cache.get_seq_length())  # (transformers 5: minus the tokens to drop)
        before = sum(1 for start, _ in spans if start < common)  # images whose tokens the cache already holds
        pixels = inputs.get("pixel_values")
        return ids, images, common, pixels[before:] if pixels is not None and before < len(spans) else None

    @staticmethod
    def _stack(caches: Sequence[Any], lengths: Sequence[int], width: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer (keys, values), each (B, heads, width, head_dim): every chain's cache (None when
        it keeps nothing) left-padded with zeros to ``width``."""
        template = next(c for c in caches if c is not None).layers
        stacked = []
        for layer, reference in enumerate(template):
            pair = []
            for kind in ("keys", "values"):
                like = getattr(reference, kind)  # (1, heads, length, head_dim)
                rows = [like.new_zeros(1, like.shape[1], width, like.shape[3]) if cache is None else
                        torch.nn.functional.pad(getattr(cache.layers[layer], kind), (0, 0, width - n, 0))
                        for cache, n in zip(caches, lengths)]
                pair.append(torch.cat(rows))
            stacked.append(tuple(pair))
        return stacked

    def _pick(self, logits: torch.Tensor, generator: torch.Generator | None) -> tuple[int, float]:
        """(token, its raw log-prob) from one row of raw logits (V,): argmax, or drawn with ``generator``."""
        token = int(logits.argmax()) if generator is None else _draw(logits, self.temperature, self.top_p, generator)
        return token, float(torch.log_softmax(logits, dim=-1)[token])

    def _stops(self, ids: Sequence[int]) -> bool:
        """Whether a thought generated so far is finished (stop token, end of a line, or the token limit)."""
        return ids[-1] in self.stop_ids or self._ends_line(ids) or len(ids) == self.max_new_tokens

    def observe(self, contexts: Sequence[HFContext], images: Sequence[Image.Image] | None,
                pixels: torch.Tensor | None = None) -> None:
        """Append each sketch as a user turn (image + ``SKETCH_TEXT``); ``images=None`` (text-only
        chains) appends a ``CONTINUE_TEXT`` user turn so roles keep alternating. The checkpoint's
        processor reads the PIL images; ``pixels`` is ignored."""
        if images is not None and len(images) != len(contexts):
            raise ValueError(f"got {len(images)} images for {len(contexts)} contexts")
        for i, context in enumerate(contexts):
            if images is None:
                content = [{"type": "text", "text": self.CONTINUE_TEXT}]
            else:
                if not isinstance(images[i], Image.Image):
                    raise TypeError(f"images[{i}] is a {type(images[i]).__name__}, expected a PIL.Image")
                content = [{"type": "image", "image": images[i]}, {"type": "text", "text": self.SKETCH_TEXT}]
            context.messages.append({"role": "user", "content": content})

    # --- helpers -------------------------------------------------------------------------------
    def _generator(self, context: HFContext) -> torch.Generator:
        key = zlib.crc32(context.problem.id.encode())
        words = np.random.SeedSequence([self.seed, key, context.step, *context.lineage]).generate_state(2, np.uint32)
        generator = torch.Generator(device=self.device)
        generator.manual_seed(((int(words[0]) << 32) | int(words[1])) & (2 ** 63 - 1))
        return generator

    def _has_newline(self, token: int) -> bool:
        if token not in self._newline:
            self._newline[token] = "\n" in self.tokenizer.decode([token], skip_special_tokens=False)
        return self._newline[token]

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def _ends_line(self, ids: Sequence[int]) -> bool:
        """Whether ``ids`` (a thought so far) ends with a token that closes a non-empty line."""
        return self._has_newline(ids[-1]) and "\n" in self._decode(ids).lstrip()

    def _cut(self, ids: list[int]) -> tuple[int, str, bool]:
        """(tokens kept incl. the stop token, thought text, whether the turn ended) for one row."""
        stops = set(self.stop_ids)
        for i, token in enumerate(ids):
            if token in stops:
                return i + 1, self._decode(ids[:i]).strip(), True
            if self._ends_line(ids[:i + 1]):
                return i + 1, self._decode(ids[:i + 1]).lstrip().split("\n", 1)[0].strip(), False
        return len(ids), self._decode(ids).strip(), False

    @staticmethod
    def _states_answer(context: HFContext, text: str) -> bool:
        # The "answer" marker is required: a navigation task parses any action sentence as a plan.
        return "answer" in text.lower() and context.task.parse_answer(text) is not None


class _ChainSampler(LogitsProcessor):
    """Logits processor: temperature + top-p sampling with one generator per row (rows whose
    generator is ``None`` are left untouched, i.e. greedy). Sampled rows come back as 0 at the drawn
    token and -inf elsewhere, so greedy ``generate`` emits exactly the drawn token."""

    def __init__(self, generators: Sequence[torch.Generator | None], temperature: float, top_p: float):
        self.generators, self.temperature, self.top_p = list(generators), temperature, top_p

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        out = scores.clone()
        for row, generator in enumerate(self.generators):
            if generator is None:
                continue
            token = _draw(scores[row], self.temperature, self.top_p, generator)
            out[row] = float("-inf")
            out[row, token] = 0.0
        return out


def _digest(image: Image.Image) -> str:
    import hashlib

    return hashlib.sha1(f"{image.mode}{image.size}".encode() + image.tobytes()).hexdigest()


def _draw(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator) -> int:
    """One token from raw ``logits`` (V,) with temperature and top-p, drawn with ``generator``."""
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs >= top_p  # keeps the top token
        probs = probs.scatter(0, order[outside], 0.0)
    return int(torch.multinomial(probs, 1, generator=generator))


class _NewlineStop(StoppingCriteria):
    """Stopping criterion: a row is done once its thought has a non-empty line ended by a newline."""

    def __init__(self, policy: HFPolicy, prompt_len: int):
        self.policy, self.prompt_len = policy, prompt_len

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        done = [input_ids.shape[1] > self.prompt_len and self.policy._ends_line(row[self.prompt_len:].tolist())
                for row in input_ids]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
