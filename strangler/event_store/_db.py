"""Connection plumbing shared by the event-store modules: a connection or a pool, JSON dumps."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeAlias

import orjson
import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from strangler.event_store.model import RecordedEvent

Source: TypeAlias = psycopg.Connection[Any] | ConnectionPool[Any]
"""Where statements run: a caller-owned connection, or a pool to borrow one from."""


@contextmanager
def connection(source: Source) -> Iterator[psycopg.Connection[Any]]:
    """Borrow a pooled connection, or use the caller's (joining its transaction, if open)."""
    if isinstance(source, ConnectionPool):
        with source.connection() as conn:
            yield conn
    else:
        yield source


def _json_default(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> str:
    """JSON text; datetimes, UUIDs and Decimals become strings rather than failing the write."""
    return orjson.dumps(value, default=_json_default).decode()


def jsonb(value: Any) -> Jsonb:
    return Jsonb(value, dumps=dumps)


EVENT_COLUMNS = (
    "position, event_id, aggregate_type, aggregate_id, aggregate_version, event_type, "
    "payload, occurred_at, recorded_at, schema_version, metadata"
)
"""Column list matching :func:`recorded_event`, for SELECT / RETURNING."""


def recorded_event(row: tuple[Any, ...]) -> RecordedEvent:
    """A row selected with :data:`EVENT_COLUMNS` as a RecordedEvent."""
    return RecordedEvent(*row)
