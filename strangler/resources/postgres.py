"""Postgres: a psycopg 3 connection pool per process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import psycopg
from psycopg_pool import ConnectionPool
from pydantic import PrivateAttr


def _read_only(conn: psycopg.Connection) -> None:
    conn.read_only = True
    conn.execute("SET TIME ZONE 'UTC'")
    conn.commit()


class PostgresResource(dg.ConfigurableResource):
    """A Postgres database: the estate's own (event store, state), or the monolith (read only)."""

    url: str
    password: str | None = None
    pool_size: int = 4
    read_only: bool = False
    """Every session read-only and in UTC: how the monolith is read, so it is never written."""

    _pool: ConnectionPool | None = PrivateAttr(default=None)

    def conninfo(self) -> str:
        """libpq conninfo; the password is passed separately so it never sits in the URL."""
        if self.password:
            return psycopg.conninfo.make_conninfo(self.url, password=self.password)
        return self.url

    def pool(self) -> ConnectionPool:
        if self._pool is None:
            self._pool = ConnectionPool(
                self.conninfo(),
                min_size=1,
                max_size=self.pool_size,
                open=True,
                name="strangler-monolith" if self.read_only else "strangler",
                check=ConnectionPool.check_connection,
                configure=_read_only if self.read_only else None,
            )
        return self._pool

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        with self.pool().connection() as conn:
            yield conn

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
