"""Texts longer than the model window: overlapping chunks, embedded and mean-pooled.

all-MiniLM-L6-v2 reads 256 word pieces and silently truncates the rest, so the tail of a long
text would not count at all. We split a long text into windows of the model's size (or the
spec's smaller `search.chunking.max_tokens`) with an overlap (a sentence cut at a boundary
still appears whole in one window), embed every window, and average the normalized window
vectors into one vector, renormalized. One object per row keeps the row the unit of search,
of deletion and of references; chunk objects would multiply objects and references for the
rare long text (so a delete has no chunk objects to chase).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np


class _Tokenizer(Protocol):
    def __call__(self, text: str, **kwargs: Any) -> Any: ...


def chunk_text(text: str, tokenizer: _Tokenizer, max_tokens: int, overlap: int) -> list[str]:
    """Windows of at most `max_tokens` word pieces (special tokens included), `overlap` shared.

    A text that fits is returned whole (the common case costs one tokenization).
    """
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets: list[tuple[int, int]] = list(enc["offset_mapping"])
    window = max_tokens - 2  # [CLS] and [SEP]
    if window <= 0:
        raise ValueError(f"max_tokens {max_tokens} leaves no room for text")
    if len(offsets) <= window:
        return [text]
    if not 0 <= overlap < window:
        raise ValueError(f"overlap {overlap} must be in [0, {window})")
    step = window - overlap
    chunks: list[str] = []
    start = 0
    while True:
        end = min(start + window, len(offsets))
        chunks.append(text[offsets[start][0] : offsets[end - 1][1]])
        if end == len(offsets):
            return chunks
        start += step


def pool(vectors: np.ndarray, groups: Sequence[int]) -> np.ndarray:
    """Mean of each group of consecutive rows (group sizes in order), renormalized."""
    out = np.empty((len(groups), vectors.shape[1]), dtype=np.float32)
    row = 0
    for i, size in enumerate(groups):
        mean = vectors[row : row + size].mean(axis=0)
        norm = float(np.linalg.norm(mean))
        out[i] = mean / norm if norm > 0 else mean
        row += size
    if row != len(vectors):
        raise ValueError(f"groups cover {row} rows of {len(vectors)}")
    return out
