"""Shared set-up for benchmarks: a throwaway database holding one seeded sample day."""

from __future__ import annotations

import os
import random
import resource
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import psycopg

from strangler.db.scratch import scratch_database
from strangler.sample import vocabulary
from strangler.sample.seed import seed
from strangler.settings import get_settings

DAY = date(2026, 2, 2)
ROWS_PER_SCALE = 5_900


@contextmanager
def seeded_day(rows: int, *, dirty_rate: float = 0.01) -> Iterator[str]:
    """A scratch database with about `rows` monolith rows created on DAY."""
    with scratch_database(get_settings().postgres_url, prefix="bench") as url:
        with psycopg.connect(url) as conn:
            seed(
                conn,
                seed=1,
                days=1,
                scale=rows / ROWS_PER_SCALE,
                dirty_rate=dirty_rate,
                start_day=DAY,
            )
            conn.commit()
        yield url


def page_texts(n: int, seed: int = 7) -> list[str]:
    """The first n OCR page texts of the sample (about 84 words each), always the same ones."""
    rng = random.Random(seed)
    categories = sorted(vocabulary.CATEGORIES)
    texts = []
    for i in range(n):
        category = rng.choice(categories)
        texts.append(
            vocabulary.page_text(
                rng, category, 1 + i % 3, vocabulary.document_context(rng, category)
            )
        )
    return texts


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


LEFT_BY_BENCHES = r"^bench(y|h)?_[0-9a-f]{8}$"
"""ClickHouse databases the benches name after their run's tag; a killed bench leaves them."""

TOPICS_LEFT_BY_BENCHES = r"^(bench[a-z]?[0-9a-f]{8}\.|bench\.perf\.[0-9a-f]{8}$)"
"""Kafka topics the benches name after their run's tag (`bench<tag>.customers.events`)."""


def drop_stray_bench_data() -> None:
    """Before timing anything: the embedded engine opens slower for every stray table (and the
    ClickHouse stages time an open), the broker restarts slower for every stray partition.
    In a child process: the engine loaded here would count in the peak RSS of every child
    forked later (a child's ru_maxrss includes the pages it shared with this process before
    exec)."""
    code = (
        "from strangler.migration.topics import delete_topics_matching\n"
        "from strangler.resources.clickhouse_session import drop_stray_databases\n"
        "from strangler.resources.kafka import KafkaResource\n"
        "from strangler.settings import get_settings\n"
        "s = get_settings()\n"
        f"n = len(drop_stray_databases(s.clickhouse_url, {LEFT_BY_BENCHES!r}))\n"
        "admin = KafkaResource(bootstrap_servers=s.kafka_bootstrap).admin()\n"
        f"t = len(delete_topics_matching(admin, {TOPICS_LEFT_BY_BENCHES!r}))\n"
        "print(f'dropped {n} ClickHouse databases and {t} Kafka topics of earlier bench runs')"
        " if n or t else None\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
