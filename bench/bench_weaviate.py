"""Synthetic days for the Weaviate sink (the memory test): one text collection of the spec;
and the pipeline-with-the-model benchmark on the spec path.

    .venv/bin/python -m bench.bench_weaviate --pages 2000 [--backend openvino-bf16]

The loading alone (precomputed vectors) and the encoder alone are the `weaviate_import` and
`embedding` stages of `bench.bench_chain`. This one runs the whole Weaviate pipeline as a day
does it (fold the events, embed through the sink's cached encoder, upsert, delete stale) with
the real model on a fresh cache, against raw `model.encode` of the same texts on the same
backend, then re-runs the unchanged day (cache warm: no model time). What it builds a day from
without a monolith: the spec's collections typed from the live monolith's catalog, the
collection whose text is a single field, and lazily generated upsert records of it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime

import psycopg

from strangler.migration.drift import read_live
from strangler.migration.kafka_records import EventRecord
from strangler.search.schema import CollectionDecl, CollectionNames, declare
from strangler.settings import get_settings
from strangler.spec.models import EstateSpec

DAY = "2025-01-02"
_ONE_FIELD = re.compile(r"^\{(\w+)\}$")


def declare_all(spec: EstateSpec, names: CollectionNames) -> list[CollectionDecl]:
    """The spec's collections, typed from the source tables as the monolith has them now."""
    settings = get_settings()
    with psycopg.connect(settings.source_url or settings.postgres_url) as conn:
        columns = {a.name: read_live(conn, a).types for a in spec.searchable}
    return declare(spec, names, columns)


def text_decl(decls: Sequence[CollectionDecl]) -> CollectionDecl:
    """The collection whose `search.text` is one field (`{field}`), e.g. a page's text."""
    for decl in decls:
        if _ONE_FIELD.match(decl.text.strip()):
            return decl
    raise LookupError(f"no collection's text is a single field: {[d.text for d in decls]}")


def page_records(
    decl: CollectionDecl, texts: Iterable[str], salt: str = "bench"
) -> Iterator[EventRecord]:
    """One upsert record of `decl` per text, generated lazily (row ids 1..n), its foreign
    keys set."""
    match = _ONE_FIELD.match(decl.text.strip())
    if match is None:
        raise ValueError(f"{decl.aggregate}: text {decl.text!r} is not a single field")
    text_field = match.group(1)
    event_type = sorted(decl.upsert_events)[0]
    at = datetime(2025, 1, 2, 12, tzinfo=UTC)
    for i, text in enumerate(texts):
        yield EventRecord(
            event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{salt}/{i}"),
            event_type=event_type,
            schema_version=1,
            aggregate_type=decl.stream_type,
            aggregate_id=str(i + 1),
            aggregate_version=1,
            occurred_at=at,
            partition_day=DAY,
            payload={
                text_field: text,
                # Three rows per parent: the references are set as a day sets them.
                **{f: i // 3 + 1 for fields in decl.parent_fields.values() for f in fields},
            },
            metadata={},
            position=i,
            topic=salt,
            kafka_partition=0,
            offset=i,
        )


def main() -> None:
    import argparse
    import tempfile
    import time
    from pathlib import Path

    from bench.common import PeakRss, page_texts
    from strangler.resources.embeddings import EmbedderResource
    from strangler.resources.weaviate import WeaviateResource
    from strangler.search.embedding_cache import CachedEncoder, EmbeddingCache
    from strangler.search.objects import DayFold
    from strangler.search.schema import drop, ensure_schema
    from strangler.search.sink import DayRead, SinkOptions, load_day
    from strangler.spec import current_spec

    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=2_000)
    parser.add_argument("--backend", default=None, help="Embedding backend (default: settings').")
    args = parser.parse_args()
    settings = get_settings()
    spec = current_spec()
    texts = page_texts(args.pages)
    n = len(texts)
    wv = WeaviateResource(url=settings.weaviate_url, grpc_port=settings.weaviate_grpc_port)
    with tempfile.TemporaryDirectory(prefix="bench-weaviate-") as tmp, wv.client() as client:
        embedder = EmbedderResource(
            **({"backend": args.backend} if args.backend else {}), cache_dir=tmp
        )
        embedder.encode(texts[:64])  # load and warm up
        started = time.perf_counter()
        embedder.encode(texts)
        raw_s = time.perf_counter() - started
        names = CollectionNames(f"Bench{uuid.uuid4().hex[:6]}")
        decls = declare_all(spec, names)
        decl = text_decl(decls)
        ensure_schema(client, decls)
        try:
            encoder = CachedEncoder(
                embedder, None, chunk_overlap=decl.chunk_overlap, max_tokens=decl.max_tokens
            )
            encoder.cache = EmbeddingCache(
                Path(tmp) / "cache.sqlite3", encoder.cache_model_key, embedder.dimension
            )
            print(
                f"{n} texts of {decl.name} ({decl.text}), {embedder.backend},"
                f" raw model.encode {n / raw_s:.1f} texts/s"
            )
            for label in ("pipeline (cold cache)", "re-run unchanged day"):
                with PeakRss() as rss:
                    started = time.perf_counter()
                    fold = DayFold(DAY, [decl])
                    try:
                        fold.add(page_records(decl, texts))
                        results, failures, _ = load_day(
                            client,
                            encoder,
                            DayRead(fold, "bench"),
                            run_token=uuid.uuid4().hex,
                            options=SinkOptions(names=names),
                        )
                    finally:
                        fold.close()
                    seconds = time.perf_counter() - started
                r = results[decl.aggregate]
                assert not failures and r.loaded == n, (failures[:3], r)
                print(
                    f"{label:24s} {n / seconds:8.1f} objects/s ({raw_s / seconds:.2f}x raw"
                    f" encode; model {r.encode.model_s:.1f}s, {r.encode.encoded} encoded)"
                    f"  peak RSS {rss.peak / 2**20:.0f} MiB (+{rss.rise / 2**20:.0f} MiB)"
                )
        finally:
            drop(client, names, spec)


if __name__ == "__main__":
    main()
