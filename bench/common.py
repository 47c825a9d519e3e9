"""Shared set-up for benchmarks: a throwaway database holding one seeded sample day."""

from __future__ import annotations

import random
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
