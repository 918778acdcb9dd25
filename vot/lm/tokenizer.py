"""A word-level tokenizer for the policy, trained with `tokenizers` on the task's own texts.

Words, punctuation marks and single digits are separate tokens (so "10x10" and "row 12" use the
same few ids as the trained sizes) and case is kept (thoughts are decoded back to text that
the sketcher and the answer parser read). Structural tokens: ``<eot>`` ends a thought that asks for a
sketch, ``<eos>`` ends the answer, ``<img>``/``</img>`` frame vision tokens and ``<1>`` ... ``<64>``
are index tokens (the k-th stated action and the k-th thought; see `vot.lm.sequences`).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

from tokenizers import Tokenizer

MAX_INDEX = 64
SPECIALS = ["<pad>", "<unk>", "<bos>", "<eot>", "<eos>", "<img>", "</img>"] + [f"<{k}>" for k in range(1, MAX_INDEX + 1)]
_NO_SPACE_BEFORE = re.compile(r" ([.,;:!?)\]\"'])")
_SPLIT_NUMBER = re.compile(r"(?<=\d) (?=\d)")


class WordTokenizer:
    """Encode text to ids and decode ids back to the same text (for text the vocabulary covers)."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        for name in SPECIALS:
            if tokenizer.token_to_id(name) is None:
                raise ValueError(f"tokenizer lacks the special token {name!r}")
        self.pad, self.unk, self.bos, self.eot, self.eos, self.img, self.img_end = (
            tokenizer.token_to_id(name) for name in SPECIALS[:7])
        self.indices = [tokenizer.token_to_id(f"<{k}>") for k in range(1, MAX_INDEX + 1)]
        self._index_of = {token: k for k, token in enumerate(self.indices, start=1)}

    def segment_step(self, state: int, token: int) -> tuple[int, int]:
        """(segment of ``token``, state after it). A token's segment is k from an index token
        ``<k>`` until the next image; everything else (the prompt, images) is segment 0."""
        if token >= 0 and token in self._index_of:
            k = self._index_of[token]
            return k, k
        if token < 0 or token in (self.img, self.img_end):  # an image slot or its frame
            return 0, 0
        return state, state

    def segments(self, ids) -> list[int]:
        """Segment ids for a whole sequence (see `segment_step`)."""
        out, state = [], 0
        for token in ids:
            segment, state = self.segment_step(state, int(token))
            out.append(segment)
        return out

    def index(self, k: int) -> int:
        """The id of index token ``<k>`` (1-based; beyond MAX_INDEX the last one)."""
        if k < 1:
            raise ValueError(f"index tokens start at 1, got {k}")
        return self.indices[min(k, MAX_INDEX) - 1]

    @classmethod
    def train(cls, corpus: Iterable[str]) -> "WordTokenizer":
        """Every word and punctuation mark in ``corpus`` gets an id."""
        from imagegen.text import word_level_tokenizer

        return cls(word_level_tokenizer(list(corpus) + [" ".join("0123456789")], SPECIALS, split_digits=True))

    @classmethod
    def load(cls, path: str | Path) -> "WordTokenizer":
        return cls(Tokenizer.from_file(str(path)))

    def save(self, path: str | Path) -> None:
        self.tokenizer.save(str(path))

    def __len__(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int]) -> str:
        """Words joined by spaces, no space before punctuation; special tokens dropped."""
        words = [self.tokenizer.id_to_token(int(i)) for i in ids if int(i) >= len(SPECIALS)]
        return _SPLIT_NUMBER.sub("", _NO_SPACE_BEFORE.sub(r"\1", " ".join(words)))
