"""An event's `events` row and `outbox` row as COPY text, with the envelope consumers read.

Both rows are built here, once per event, and cross into Postgres by COPY: Postgres only
parses them, as for any COPY, instead of re-assembling every envelope from stored columns.
The text is built before the write (a migration builds it on its reading thread) except for
the values only the write knows, spliced in last: the aggregate version (numbered after the
stream's stored events), the position and `recorded_at`.
The envelope's and the headers' shape is declared here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from strangler.event_store._db import dumps
from strangler.event_store.model import NewEvent

EVENT_ROW_COLUMNS = (
    "event_id",
    "aggregate_type",
    "aggregate_id",
    "event_type",
    "schema_version",
    "payload",
    "metadata",
    "occurred_at",
    "aggregate_version",
    "position",
)
OUTBOX_ROW_COLUMNS = (
    "event_id",
    "topic",
    "message_key",
    "occurred_at",
    "position",
    "headers",
    "payload",
)
_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def field(text: str) -> str:
    """`text` as one field of COPY's text format."""
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return text.translate(_ESCAPES)
    return text


def json_field(text: str) -> str:
    """JSON text as one COPY field (JSON escapes control characters; only `\\` remains)."""
    return text.replace("\\", "\\\\") if "\\" in text else text


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """An event's two rows as COPY text, all but its version, position and `recorded_at`."""

    event: NewEvent
    event_row: str
    """The `events` fields before the version, each followed by a tab."""
    outbox_row: str
    """The `outbox` fields before the position, each followed by a tab."""
    headers_head: str
    """The headers' JSON up to the version's value."""
    envelope_head: str
    """The envelope's JSON up to the version's value."""

    def numbered(self, version: int) -> EncodedEvent:
        """The same event at `version` (the text does not change: the version is spliced)."""
        e = self.event
        event = NewEvent(
            e.event_id,
            e.aggregate_type,
            e.aggregate_id,
            version,
            e.event_type,
            e.payload,
            e.occurred_at,
            e.schema_version,
            e.metadata,
        )
        return EncodedEvent(
            event, self.event_row, self.outbox_row, self.headers_head, self.envelope_head
        )

    def event_line(self, position: int) -> str:
        return f"{self.event_row}{self.event.aggregate_version}\t{position}\n"

    def outbox_line(self, position: int, recorded_at: str) -> str:
        """`recorded_at` is JSON text (a quoted timestamp)."""
        version = self.event.aggregate_version
        return (
            f'{self.outbox_row}{position}\t{self.headers_head}{version}","position":"{position}"}}'
            f'\t{self.envelope_head}{version},"position":{position},"recorded_at":{recorded_at}}}\n'
        )


def encode(event: NewEvent, topic: str) -> EncodedEvent:
    """Serialize `event` once; refuse a naive time (partitions are UTC days)."""
    if event.occurred_at.tzinfo is None:
        raise ValueError(
            f"event {event.event_id}: occurred_at must be timezone-aware (partitions are UTC days)"
        )
    event_id, occurred = str(event.event_id), event.occurred_at.isoformat()
    aggregate_type, aggregate_id = field(event.aggregate_type), field(event.aggregate_id)
    payload, metadata = json_field(dumps(event.payload)), json_field(dumps(event.metadata))
    headers = _json_object(
        {
            "event_id": event_id,
            "event_type": event.event_type,
            "schema_version": str(event.schema_version),
            "occurred_at": occurred,
            "aggregate_type": event.aggregate_type,
        }
    )
    envelope = _json_object(
        {
            "event_id": event_id,
            "aggregate_type": event.aggregate_type,
            "aggregate_id": event.aggregate_id,
            "event_type": event.event_type,
            "schema_version": event.schema_version,
            "occurred_at": occurred,
        }
    )
    return EncodedEvent(
        event,
        event_row=(
            f"{event_id}\t{aggregate_type}\t{aggregate_id}\t{field(event.event_type)}\t{event.schema_version}\t{payload}\t{metadata}\t"
            f"{occurred}\t"
        ),
        outbox_row=f"{event_id}\t{field(topic)}\t{aggregate_id}\t{occurred}\t",
        headers_head=f'{headers},"aggregate_version":"',
        envelope_head=f'{envelope},"payload":{payload},"metadata":{metadata},"aggregate_version":',
    )


def _json_object(values: dict[str, object]) -> str:
    """The object's JSON as a COPY field, without its closing brace (more keys follow)."""
    return json_field(orjson.dumps(values).decode())[:-1]
