"""Long texts in passages the embedding model can read whole.

A sentence-transformers model reads a fixed number of word pieces (all-MiniLM-L6-v2: 256) and
silently drops the rest. So a text longer than that is split into passages that fit: at sentence
boundaries where it can be (semantic-text-splitter, counting with the model's own tokenizer), each
overlapping the one before by `overlap` word pieces, so a fact that straddles a boundary is whole
in one of them. Every passage becomes a vector pointing back to its item; recall scores an item by
its best passage and shows that passage as the hit's highlight.

The whole text stays in Neo4j and in the keyword index: passages exist for the vectors only.
"""

from __future__ import annotations

from dataclasses import dataclass

from semantic_text_splitter import TextSplitter
from tokenizers import Tokenizer

SPECIAL_TOKENS = 2  # [CLS] and [SEP] take two of the model's places
PREFIX_ROOM = 24  # what a vector's text adds in front of a passage: "<entity name>: "
DEFAULT_OVERLAP = 32


@dataclass(frozen=True)
class Passage:
    start: int  # character offsets into the text
    end: int
    text: str


class PassageSplitter:
    """Splits texts for one model; a text that fits is one passage, the whole of it."""

    def __init__(self, tokenizer: Tokenizer, window_tokens: int, *, overlap: int = DEFAULT_OVERLAP) -> None:
        tokenizer = Tokenizer.from_str(tokenizer.to_str())  # a copy: the model's own truncates and pads
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self.capacity = max(16, window_tokens - SPECIAL_TOKENS - PREFIX_ROOM)
        self.overlap = min(overlap, self.capacity // 4)
        self._tokenizer = tokenizer
        self._splitter = TextSplitter.from_huggingface_tokenizer(tokenizer, capacity=self.capacity,
                                                                 overlap=self.overlap)

    def split(self, text: str) -> list[Passage]:
        # A word piece covers at least one character, so a text no longer than the capacity fits.
        if len(text) <= self.capacity or len(self._tokenizer.encode(text, add_special_tokens=False)) <= self.capacity:
            return [Passage(0, len(text), text)]
        return [Passage(start, start + len(chunk), chunk) for start, chunk in self._splitter.chunk_indices(text)]
