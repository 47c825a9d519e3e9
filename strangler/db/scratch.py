"""Throwaway databases beside the configured one: tests and benchmarks run in their own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse, urlunparse

import psycopg
from psycopg import sql

from strangler.db.migrations import migrate


def with_database(url: str, database: str) -> str:
    """`url` pointed at another database on the same server."""
    return urlunparse(urlparse(url)._replace(path=f"/{database}"))


@contextmanager
def scratch_database(base_url: str, prefix: str = "t") -> Iterator[str]:
    """A new database with every migration applied; dropped (even with open sessions) after."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = with_database(base_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(base_url, name)
    try:
        migrate(url)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
