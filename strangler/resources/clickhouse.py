"""ClickHouse through clickhouse-connect: `chdb://` embedded or `http(s)://` server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from clickhouse_connect.driver.client import Client

from strangler.resources.clickhouse_session import clickhouse_client, is_embedded


class ClickHouseResource(dg.ConfigurableResource):
    """Each `client()` block is one operation; with chdb it holds the cross-process lock."""

    dsn: str
    password: str | None = None
    lock_timeout_s: float = 300.0

    @property
    def embedded(self) -> bool:
        return is_embedded(self.dsn)

    @contextmanager
    def client(self) -> Iterator[Client]:
        with clickhouse_client(
            self.dsn, password=self.password, lock_timeout_s=self.lock_timeout_s
        ) as client:
            yield client
