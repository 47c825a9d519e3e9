"""Open a clickhouse-connect client for one operation, serialized across processes for chdb."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from filelock import FileLock, Timeout


class ClickHouseLockTimeout(RuntimeError):
    """Another process held the embedded ClickHouse data dir for too long."""


def is_embedded(dsn: str) -> bool:
    return dsn.startswith("chdb:")


def embedded_path(dsn: str) -> Path:
    """The data dir of a `chdb:///abs/path` DSN."""
    parsed = urlparse(dsn)
    if parsed.netloc and parsed.netloc != "":
        raise ValueError(f"expected chdb:///absolute/path, got {dsn!r}")
    return Path(parsed.path)


@contextmanager
def clickhouse_client(
    dsn: str, *, password: str | None = None, lock_timeout_s: float = 300.0
) -> Iterator[Client]:
    """A client for one unit of work.

    The embedded engine (chdb) lets one process at a time open a data dir, and Dagster runs
    steps, sensors and the CLI in separate processes, so for `chdb://` the dir is guarded by a
    file lock held only for the duration of this context.
    """
    if not is_embedded(dsn):
        client = clickhouse_connect.get_client(dsn=dsn, password=password or "")
        try:
            yield client
        finally:
            client.close()
        return
    path = embedded_path(dsn)
    path.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path) + ".lock")
    try:
        lock.acquire(timeout=lock_timeout_s)
    except Timeout as exc:
        raise ClickHouseLockTimeout(
            f"embedded ClickHouse at {path} stayed busy for {lock_timeout_s:.0f}s "
            "(another process holds it; raise STRANGLER_CLICKHOUSE_LOCK_TIMEOUT_S or use a server DSN)"
        ) from exc
    try:
        client = clickhouse_connect.get_client(dsn=dsn)
        try:
            yield client
        finally:
            client.close()
    finally:
        lock.release()


def drop_stray_databases(dsn: str, pattern: str) -> list[str]:
    """Drop the embedded engine's databases whose names match `pattern` (the scratch databases
    of killed test or bench runs): the engine loads every table of its data dir each time it
    opens, so strays make every later open slower (160 of them: 0.8 s instead of 0.08 s).
    A server DSN is left alone. Returns the names dropped."""
    if not is_embedded(dsn) or not embedded_path(dsn).exists():
        return []
    with clickhouse_client(dsn) as client:
        names = [
            str(row[0])
            for row in client.query(
                "SELECT name FROM system.databases WHERE match(name, {pattern:String})",
                parameters={"pattern": pattern},
            ).result_rows
        ]
        for name in names:
            client.command(f"DROP DATABASE IF EXISTS `{name}` SYNC")
    return names
