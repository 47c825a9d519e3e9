"""Vectors keyed by (model, sha256(text)): re-embedding an unchanged day costs no model time.

Encoding is the pipeline's bottleneck (~65 texts/s of 60 words on 2 CPU cores under PyTorch),
while a day is often re-materialized with the same texts (backfills, re-runs after a failed
check, rollbacks forward). The cache is a SQLite file (WAL, so parallel partition runs of the
multiprocess executor share it) under STRANGLER_HOME; a lost cache only costs time. The key
includes the backend and chunking parameters, because they change the vector.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from strangler.search.chunking import chunk_text, pool

_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    model   TEXT NOT NULL,
    digest  BLOB NOT NULL,
    vector  BLOB NOT NULL,
    PRIMARY KEY (model, digest)
) WITHOUT ROWID
"""
_LOOKUP_CHUNK = 500


def text_digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


class EmbeddingCache:
    """A (model, digest) -> float32 vector store; one SQLite connection per thread."""

    def __init__(self, path: Path, model: str, dimension: int) -> None:
        self.path = path
        self.model = model
        self.dimension = dimension
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._conn() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_SCHEMA)

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        yield conn

    def get_many(self, digests: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        with self._conn() as conn:
            for start in range(0, len(digests), _LOOKUP_CHUNK):
                part = list(digests[start : start + _LOOKUP_CHUNK])
                marks = ",".join("?" * len(part))
                rows = conn.execute(
                    f"SELECT digest, vector FROM embeddings WHERE model = ? AND digest IN ({marks})",
                    [self.model, *part],
                ).fetchall()
                for digest, blob in rows:
                    vector = np.frombuffer(blob, dtype=np.float32)
                    if vector.shape == (self.dimension,):
                        found[bytes(digest)] = vector
        return found

    def put_many(self, items: dict[bytes, np.ndarray]) -> None:
        if not items:
            return
        with self._conn() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT OR REPLACE INTO embeddings (model, digest, vector) VALUES (?, ?, ?)",
                    [
                        (self.model, d, np.asarray(v, dtype=np.float32).tobytes())
                        for d, v in items.items()
                    ],
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def count(self) -> int:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT count(*) FROM embeddings WHERE model = ?", (self.model,)
            ).fetchone()
            return int(row[0])

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class Encoder(Protocol):
    """What EmbedderResource offers (kept structural so pure tests can pass a small stub)."""

    @property
    def model_name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...

    def tokenizer(self) -> object: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass
class EncodeStats:
    texts: int = 0
    unique: int = 0
    cache_hits: int = 0
    encoded: int = 0
    chunks: int = 0
    long_texts: int = 0
    model_s: float = 0.0

    def add(self, other: EncodeStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class CachedEncoder:
    """Encoder + cache + chunking: identical texts are encoded once, cached ones never."""

    def __init__(
        self,
        encoder: Encoder,
        cache: EmbeddingCache | None,
        *,
        chunk_overlap: int = 32,
        max_tokens: int | None = None,
    ) -> None:
        self.encoder = encoder
        self.cache = cache
        self.chunk_overlap = chunk_overlap
        self.max_tokens = max_tokens

    @property
    def window(self) -> int:
        """Word pieces per chunk: the spec's `chunking.max_tokens`, at most the model's."""
        model = self.encoder.max_tokens
        return min(model, self.max_tokens) if self.max_tokens else model

    @property
    def cache_model_key(self) -> str:
        return f"{self.encoder.model_name}|window={self.window}/{self.chunk_overlap}"

    def with_chunking(self, chunk_overlap: int, max_tokens: int | None) -> CachedEncoder:
        """The same model and cache file under another chunking (its own cache key, since
        the chunking changes the vector)."""
        if (chunk_overlap, max_tokens) == (self.chunk_overlap, self.max_tokens):
            return self
        out = CachedEncoder(self.encoder, None, chunk_overlap=chunk_overlap, max_tokens=max_tokens)
        if self.cache is not None:
            out.cache = EmbeddingCache(self.cache.path, out.cache_model_key, self.cache.dimension)
        return out

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, EncodeStats]:
        stats = EncodeStats(texts=len(texts))
        digests = [text_digest(t) for t in texts]
        unique: dict[bytes, str] = dict(zip(digests, texts, strict=True))
        stats.unique = len(unique)
        vectors = self.cache.get_many(list(unique)) if self.cache else {}
        stats.cache_hits = len(vectors)
        missing = [d for d in unique if d not in vectors]
        if missing:
            fresh = self._encode_fresh([unique[d] for d in missing], stats)
            new = dict(zip(missing, fresh, strict=True))
            if self.cache:
                self.cache.put_many(new)
            vectors.update(new)
        out = np.empty((len(texts), self.encoder.dimension), dtype=np.float32)
        for i, d in enumerate(digests):
            out[i] = vectors[d]
        return out, stats

    def _encode_fresh(self, texts: list[str], stats: EncodeStats) -> np.ndarray:
        tokenizer = self.encoder.tokenizer()
        pieces: list[str] = []
        groups: list[int] = []
        for text in texts:
            chunks = chunk_text(text, tokenizer, self.window, self.chunk_overlap)  # type: ignore[arg-type]
            pieces.extend(chunks)
            groups.append(len(chunks))
            if len(chunks) > 1:
                stats.long_texts += 1
        started = time.perf_counter()
        raw = self.encoder.encode(pieces)
        stats.model_s += time.perf_counter() - started
        stats.encoded += len(texts)
        stats.chunks += len(pieces)
        if len(pieces) == len(texts):
            return raw
        return pool(raw, groups)
