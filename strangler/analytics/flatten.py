"""EventRecord -> one flat analytics.events row, buffered column-wise and handed over as Arrow.

Pure: no I/O. Each event type carries a few of the flat fields; the rest get neutral values
(0, '' or NULL where 0 would be a lie, e.g. a duration), so every row has the same shape.
Values that do not fit their column (negative ids, text where a number belongs) become the
neutral value rather than failing the day: the event store already validated the payloads,
this only guards the columnar types.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

from strangler.migration.kafka_records import EventRecord

_UTC_MS = pa.timestamp("ms", tz="UTC")

EVENTS_SCHEMA = pa.schema(
    [
        ("partition_day", pa.date32()),
        ("occurred_at", _UTC_MS),
        ("event_id", pa.binary(16)),
        ("event_type", pa.string()),
        ("schema_version", pa.uint16()),
        ("aggregate_type", pa.string()),
        ("aggregate_id", pa.string()),
        ("aggregate_version", pa.uint32()),
        ("position", pa.int64()),
        ("customer_id", pa.uint64()),
        ("document_id", pa.uint64()),
        ("page_id", pa.uint64()),
        ("job_id", pa.uint64()),
        ("service", pa.string()),
        ("status", pa.string()),
        ("category", pa.string()),
        ("mime_type", pa.string()),
        ("plan", pa.string()),
        ("country", pa.string()),
        ("size_bytes", pa.uint64()),
        ("page_count", pa.uint32()),
        ("page_number", pa.uint32()),
        ("text_length", pa.uint32()),
        ("confidence", pa.float32()),
        ("attempt", pa.uint16()),
        ("duration_ms", pa.uint32()),
        ("error", pa.string()),
        ("source_topic", pa.string()),
        ("kafka_partition", pa.int32()),
        ("kafka_offset", pa.int64()),
    ]
)
"""Column order and types of analytics.events, as sent to ClickHouse (UUIDs as 16 raw bytes)."""

COLUMNS: tuple[str, ...] = tuple(EVENTS_SCHEMA.names)

_U16, _U32, _U64 = 2**16 - 1, 2**32 - 1, 2**64 - 1

# Status an event implies when its payload has none.
_IMPLIED_STATUS = {"DocumentUploaded": "uploaded", "ProcessingJobStarted": "started"}


def _uint(value: Any, limit: int = _U64) -> int:
    """A non-negative int that fits, else 0 (ids and counters: 0 means 'not carried')."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            return 0
        value = int(value)
    return value if 0 <= value <= limit else 0


def _opt_uint(value: Any, limit: int) -> int | None:
    """Like _uint, but a missing or unusable value stays NULL (a duration of 0 is a real one)."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            return None
        value = int(value)
    return value if 0 <= value <= limit else None


def _opt_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _utc(value: datetime) -> datetime:
    """Naive timestamps are UTC by contract; aware ones are converted."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def row_values(record: EventRecord) -> tuple[Any, ...]:
    """One analytics.events row as a tuple in COLUMNS order (the hot path: no dict per row)."""
    p: Mapping[str, Any] = record.payload if isinstance(record.payload, Mapping) else {}
    text = p.get("text")
    get = p.get
    return (
        date.fromisoformat(record.partition_day),
        _utc(record.occurred_at),
        record.event_id.bytes,
        record.event_type,
        _uint(record.schema_version, _U16),
        record.aggregate_type,
        str(record.aggregate_id),
        _uint(record.aggregate_version, _U32),
        int(record.position),
        _uint(get("customer_id")),
        _uint(get("document_id")),
        _uint(get("page_id")),
        _uint(get("job_id")),
        _text(get("service")),
        _text(get("status")) or _IMPLIED_STATUS.get(record.event_type, ""),
        _text(get("category")),
        _text(get("mime_type")),
        _text(get("plan")),
        _text(get("country")),
        _uint(get("size_bytes")),
        _uint(get("page_count"), _U32),
        _uint(get("page_number"), _U32),
        min(len(text), _U32) if isinstance(text, str) else 0,
        _opt_float(get("confidence")),
        _uint(get("attempt"), _U16),
        _opt_uint(get("duration_ms"), _U32),
        _text(get("error")),
        record.topic,
        int(record.kafka_partition),
        int(record.offset),
    )


def flatten(record: EventRecord) -> dict[str, Any]:
    """One analytics.events row (column -> Python value) for one event."""
    return dict(zip(COLUMNS, row_values(record), strict=True))


_EVENT_ID = COLUMNS.index("event_id")


class EventColumns:
    """Buffer of flattened events; `take()` empties it into an Arrow table.

    Rows are kept as tuples and transposed once per batch (zip(*rows) runs in C). Callers
    flush it every N rows, so memory stays flat however large the day is.
    """

    def __init__(self) -> None:
        self._rows: list[tuple[Any, ...]] = []

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, record: EventRecord) -> None:
        self._rows.append(row_values(record))

    def extend(self, records: Iterable[EventRecord]) -> None:
        self._rows.extend(map(row_values, records))

    def event_ids(self) -> list[bytes]:
        return [row[_EVENT_ID] for row in self._rows]

    def take(self) -> pa.Table:
        rows, self._rows = self._rows, []
        if not rows:
            return EVENTS_SCHEMA.empty_table()
        columns = list(zip(*rows, strict=True))
        return pa.Table.from_arrays(
            [pa.array(col, type=f.type) for col, f in zip(columns, EVENTS_SCHEMA, strict=True)],
            schema=EVENTS_SCHEMA,
        )


def to_arrow(records: Iterable[EventRecord]) -> pa.Table:
    buffer = EventColumns()
    buffer.extend(records)
    return buffer.take()
