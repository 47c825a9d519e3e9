"""The Weaviate sink's memory stays flat as a day grows.

The bench path (a synthetic day of the spec's one-field-text collection folded by DayFold,
then `load_day` into throwaway collections)
with the real model and real Weaviate, at N and 4N pages: the traced peak of fold + load must
grow far less than the input does. Texts are a few words, so the model stays cheap.
"""

from __future__ import annotations

import gc
import tracemalloc
import uuid
from collections.abc import Iterator

import pytest

from bench.bench_weaviate import DAY, declare_all, page_records, text_decl
from strangler.resources.embeddings import EmbedderResource
from strangler.resources.weaviate import WeaviateResource
from strangler.search.embedding_cache import CachedEncoder
from strangler.search.objects import DayFold
from strangler.search.schema import CollectionDecl, CollectionNames, drop, ensure_schema
from strangler.search.sink import DayRead, SinkOptions, load_day
from strangler.spec import current_spec

pytestmark = pytest.mark.integration

N = 400
WORDS = ["invoice", "payment", "cargo", "patient", "balance", "resume", "vessel", "account"]


def _texts(n: int, salt: str) -> Iterator[str]:
    """Generated lazily: the input itself is never held, only what the sink keeps."""
    for i in range(n):
        yield " ".join(WORDS[(i + k) % len(WORDS)] for k in range(4)) + f" {salt} {i}"


def _fold_and_load(
    client: object, encoder: CachedEncoder, decl: CollectionDecl, n: int, salt: str
) -> int:
    """Traced peak (bytes above the start) of folding and loading a day of n pages."""
    gc.collect()
    tracemalloc.reset_peak()
    start, _ = tracemalloc.get_traced_memory()
    fold = DayFold(DAY, [decl])
    try:
        fold.add(page_records(decl, _texts(n, salt), f"memory/{salt}"))
        results, failures, outcomes = load_day(
            client,  # type: ignore[arg-type]
            encoder,
            DayRead(fold, "memory-test"),
            run_token=uuid.uuid4().hex,
            options=SinkOptions(
                names=CollectionNames(decl.name.removesuffix(decl.aggregate)),
                encode_batch=64,
                upload_batch=32,
            ),
        )
        del outcomes
    finally:
        fold.close()
    _, peak = tracemalloc.get_traced_memory()
    assert not failures and results[decl.aggregate].loaded == n, (failures[:3], results)
    assert fold.closed and not fold.path.exists()
    return peak - start


def test_sink_peak_memory_is_flat_in_the_size_of_the_day(
    weaviate_resource: WeaviateResource, embedder: EmbedderResource
) -> None:
    embedder.encode(["warm up the model"])
    encoder = CachedEncoder(embedder, None)  # no cache: every run really encodes
    names = CollectionNames(f"Mem{uuid.uuid4().hex[:6]}")
    spec = current_spec()
    decls = declare_all(spec, names)
    decl = text_decl(decls)
    with weaviate_resource.client() as client:
        ensure_schema(client, decls)
        tracemalloc.start()
        try:
            _fold_and_load(client, encoder, decl, 100, "warm")  # one-time imports and caches
            small = _fold_and_load(client, encoder, decl, N, "small")
            large = _fold_and_load(client, encoder, decl, 4 * N, "large")
        finally:
            tracemalloc.stop()
            drop(client, names, spec)
    print(f"peak traced memory: {N} pages {small / 1e6:.2f} MB, {4 * N} pages {large / 1e6:.2f} MB")
    assert large < 2 * small, (small, large)
