"""Benchmark: OCR page text -> Weaviate, against raw `model.encode` of the same texts.

    .venv/bin/python -m bench.bench_weaviate --pages 10000 [--backends torch,onnx,onnx-int8]
    .venv/bin/python -m bench.bench_weaviate --full        # 100k pages (long on 2 CPU cores)

Per backend, in one run: raw encode of the texts (the baseline), the sink pipeline on a fresh
cache (events -> embed -> upsert -> delete stale), and a re-run of the unchanged day (cache
warm: model time should be zero). Once: a raw client batch import of precomputed vectors (the
upload ceiling), and each backend's fidelity (cosine against fp32 PyTorch on the same texts).
Everything goes to throwaway collections and a throwaway cache directory.

Next to each pipeline throughput: the peak RSS of the process during that stage and how far it
rose over the RSS the stage started at (sampled from /proc by a thread, so the throughput is not
slowed the way tracemalloc would slow it). The rise should not grow with --pages.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.common import page_texts
from strangler.migration.kafka_records import EventRecord
from strangler.resources.embeddings import EmbedderResource
from strangler.resources.weaviate import WeaviateResource
from strangler.search.embedding_cache import CachedEncoder, EmbeddingCache
from strangler.search.objects import DayFold
from strangler.search.schema import CollectionNames, drop, ensure_schema
from strangler.search.sink import DayRead, SinkOptions, load_day
from strangler.settings import get_settings

DAY = "2025-01-02"


def page_records(texts: Iterable[str], salt: str = "bench") -> Iterator[EventRecord]:
    """One OcrPageExtracted record per text, generated lazily (three pages per document)."""
    at = datetime(2025, 1, 2, 12, tzinfo=UTC)
    for i, text in enumerate(texts):
        yield EventRecord(
            event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{salt}/{i}"),
            event_type="OcrPageExtracted",
            schema_version=1,
            aggregate_type="OcrPage",
            aggregate_id=str(i + 1),
            aggregate_version=1,
            occurred_at=at,
            partition_day=DAY,
            payload={
                "page_id": i + 1,
                "document_id": i // 3 + 1,
                "page_number": i % 3 + 1,
                "text": text,
                "confidence": 0.95,
            },
            metadata={},
            position=i,
            topic=salt,
            kafka_partition=0,
            offset=i,
        )


def day_read(texts: list[str]) -> DayRead:
    fold = DayFold(DAY)
    fold.add(page_records(texts))
    return DayRead(fold, "bench")


class PeakRss:
    """Peak resident set size while the block runs (sampled every `interval` seconds)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.start = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="peak-rss", daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, _rss())

    def __enter__(self) -> PeakRss:
        self.start = self.peak = _rss()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())

    @property
    def rise(self) -> int:
        return self.peak - self.start


def _rss() -> int:
    """Current RSS in bytes (Linux /proc; elsewhere the process's lifetime peak)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--full", action="store_true", help="100k pages")
    parser.add_argument("--backends", default="torch,onnx,onnx-int8")
    args = parser.parse_args()
    n = 100_000 if args.full else args.pages
    settings = get_settings()
    wv = WeaviateResource(url=settings.weaviate_url, grpc_port=settings.weaviate_grpc_port)
    texts = page_texts(n)
    words = sum(len(t.split()) for t in texts) / n
    print(f"{n} pages, {words:.0f} words on average, {os.cpu_count()} CPU cores")
    reference: np.ndarray | None = None
    torch_rate: float | None = None
    with tempfile.TemporaryDirectory() as tmp, wv.client() as client:
        for backend in args.backends.split(","):
            embedder = EmbedderResource(backend=backend, cache_dir=str(Path(tmp) / backend))
            embedder.encode(texts[:64])  # load, export/quantize once, warm up
            started = time.perf_counter()
            raw = embedder.encode(texts)
            raw_s = time.perf_counter() - started
            if backend == "torch":
                reference = raw
            fidelity = ""
            if reference is not None and backend != "torch":
                cos = (reference * raw).sum(axis=1)
                fidelity = f"  cosine vs torch fp32: min {cos.min():.4f} mean {cos.mean():.4f}"
            names = CollectionNames(f"Bench{uuid.uuid4().hex[:6]}")
            ensure_schema(client, names)
            try:
                encoder = CachedEncoder(embedder, None)
                encoder.cache = EmbeddingCache(
                    Path(tmp) / backend / "cache.sqlite3",
                    encoder.cache_model_key,
                    embedder.dimension,
                )
                runs = []
                for label in ("pipeline (cold cache)", "re-run unchanged day"):
                    with PeakRss() as rss:
                        started = time.perf_counter()
                        read = day_read(texts)
                        try:
                            results, failures, _ = load_day(
                                client,
                                encoder,
                                read,
                                run_token=uuid.uuid4().hex,
                                options=SinkOptions(names=names),
                                types=["OcrPage"],
                            )
                        finally:
                            read.fold.close()
                        seconds = time.perf_counter() - started
                    r = results["OcrPage"]
                    assert not failures and r.loaded == n, (failures[:3], r)
                    runs.append((label, seconds, r.encode.model_s, r.encode.encoded, rss))
                print(f"\n[{backend}] raw model.encode: {n / raw_s:8.1f} texts/s{fidelity}")
                for label, seconds, model_s, encoded, rss in runs:
                    print(
                        f"[{backend}] {label:24s} {n / seconds:8.1f} objects/s"
                        f"  ({n / seconds / (n / raw_s):.2f}x raw encode;"
                        f" model {model_s:.1f}s, {encoded} encoded)"
                        f"  peak RSS {rss.peak / 2**20:.0f} MiB"
                        f" (+{rss.rise / 2**20:.0f} MiB over the stage's start)"
                    )
                if backend == "torch":
                    bulk = client.collections.get(names.document)
                    started = time.perf_counter()
                    with bulk.batch.fixed_size(batch_size=500, concurrent_requests=2) as batch:
                        for i, v in enumerate(raw):
                            batch.add_object(
                                properties={"document_id": i, "day": DAY}, vector=v.tolist()
                            )
                    import_s = time.perf_counter() - started
                    assert not bulk.batch.failed_objects
                    print(
                        f"[client] raw batch import of precomputed vectors: {n / import_s:8.1f} objects/s"
                    )
                    torch_rate = n / raw_s
                elif torch_rate is not None:
                    print(
                        f"[{backend}] raw encode vs torch raw encode: {(n / raw_s) / torch_rate:.2f}x"
                    )
            finally:
                drop(client, names)


if __name__ == "__main__":
    main()
