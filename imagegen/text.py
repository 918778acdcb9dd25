"""The sketcher's text side: a word-level tokenizer trained with `tokenizers` and a small CLIP-style
text encoder built from a transformers config."""
from __future__ import annotations

from typing import Iterable

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from transformers import CLIPTextConfig, CLIPTextModelWithProjection, PreTrainedTokenizerFast

SPECIALS = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]  # EOS is id 3: CLIP pools at the first EOS (ids != 2)
MAX_LENGTH = 16


def word_level_tokenizer(corpus: Iterable[str], specials: list[str], *, lowercase: bool = False,
                         split_digits: bool = False) -> Tokenizer:
    """The project's one word-level tokenizer builder (the sketcher's and the policy's,
    `vot.lm.tokenizer.WordTokenizer`): words and punctuation marks split off (each digit alone with
    ``split_digits``), ``specials`` first (ids 0, 1, ...; ``specials[1]`` is the unknown token),
    then every word of ``corpus``."""
    tokenizer = Tokenizer(models.WordLevel(unk_token=specials[1]))
    if lowercase:
        tokenizer.normalizer = normalizers.Lowercase()
    splitters = [pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()]
    if split_digits:
        splitters.append(pre_tokenizers.Digits(individual_digits=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(splitters)
    tokenizer.train_from_iterator(list(corpus), trainers.WordLevelTrainer(special_tokens=specials, min_frequency=1))
    return tokenizer


def train_tokenizer(corpus: Iterable[str]) -> PreTrainedTokenizerFast:
    """Word-level, lower-cased, punctuation split off; every word of ``corpus`` gets an id."""
    tokenizer = word_level_tokenizer(corpus, SPECIALS, lowercase=True)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", 2), ("[EOS]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]", eos_token="[EOS]",
        model_max_length=MAX_LENGTH,
    )


def build_text_encoder(tokenizer: PreTrainedTokenizerFast, hidden: int, layers: int, heads: int,
                       projection: int) -> CLIPTextModelWithProjection:
    """A randomly initialised CLIP text tower sized for ``tokenizer``; ``text_embeds`` are (B, projection)."""
    config = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, projection_dim=projection,
        num_hidden_layers=layers, num_attention_heads=heads, max_position_embeddings=MAX_LENGTH,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    return CLIPTextModelWithProjection(config)


def encode_text(tokenizer, text_encoder, thoughts: list[str], device: torch.device) -> torch.Tensor:
    """Thoughts -> (B, projection) embeddings."""
    batch = tokenizer(thoughts, padding="max_length", truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
    output = text_encoder(input_ids=batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device))
    return output.text_embeds  # (B, projection)
