"""Postgres: a psycopg 3 connection pool per process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import psycopg
from psycopg_pool import ConnectionPool
from pydantic import PrivateAttr


class PostgresResource(dg.ConfigurableResource):
    """The monolith / event-store database."""

    url: str
    password: str | None = None
    pool_size: int = 4

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
                name="strangler",
                check=ConnectionPool.check_connection,
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
