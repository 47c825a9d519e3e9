"""Shared set-up for benchmarks: a throwaway database holding one seeded sample day."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from urllib.parse import urlparse, urlunparse

import psycopg
from psycopg import sql

from strangler.db.migrations import migrate
from strangler.sample.seed import seed
from strangler.settings import get_settings

DAY = date(2026, 2, 2)
ROWS_PER_SCALE = 5_900


def db_url(base: str, name: str) -> str:
    return urlunparse(urlparse(base)._replace(path=f"/{name}"))


@contextmanager
def seeded_day(rows: int, *, dirty_rate: float = 0.01) -> Iterator[str]:
    """A new database with about `rows` monolith rows created on DAY; dropped afterwards."""
    base = get_settings().postgres_url
    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin = db_url(base, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = db_url(base, name)
    try:
        migrate(url)
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
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
