"""The COPY text of an event's rows: escaping, and the envelope consumers will read."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime

import pytest

from strangler.event_store.copy_text import (
    EVENT_ROW_COLUMNS,
    OUTBOX_ROW_COLUMNS,
    encode,
    field,
)
from strangler.event_store.model import NewEvent

AWKWARD = ["tab\there", "line\nbreak\r", "back\\slash \\N", 'quote " done', "ünïcødé ✓", ""]
_UNESCAPES = {"\\\\": "\\", "\\n": "\n", "\\r": "\r", "\\t": "\t"}


def _fields(line: str) -> list[str]:
    """A COPY text line back into its values (what Postgres does on the other side)."""
    assert line.endswith("\n")
    return [
        re.sub(r"\\[\\nrt]", lambda m: _UNESCAPES[m.group(0)], raw) for raw in line[:-1].split("\t")
    ]


def _event(text: str) -> NewEvent:
    return NewEvent(
        uuid.uuid4(),
        "Customer",
        f"id {text}",
        3,
        "CustomerRenamed",
        {"name": text, "nested": [text, 1.5, None]},
        datetime(2024, 3, 1, 23, 30, tzinfo=UTC),
        2,
        {"source_table": text},
    )


@pytest.mark.parametrize("text", AWKWARD)
def test_field_round_trips(text: str) -> None:
    assert _fields(field(text) + "\n") == [text]


@pytest.mark.parametrize("text", AWKWARD)
def test_rows_carry_every_value_and_the_envelope(text: str) -> None:
    event = _event(text)
    encoded = encode(event, "customer.events")
    row = dict(zip(EVENT_ROW_COLUMNS, _fields(encoded.event_line(41)), strict=True))
    assert row["aggregate_id"] == event.aggregate_id
    assert json.loads(row["payload"]) == event.payload
    assert json.loads(row["metadata"]) == event.metadata
    assert row["position"] == "41"

    recorded_at = '"2026-12-01T11:00:00.5+00:00"'
    box = dict(zip(OUTBOX_ROW_COLUMNS, _fields(encoded.outbox_line(41, recorded_at)), strict=True))
    assert (box["topic"], box["message_key"], box["position"]) == (
        "customer.events",
        event.aggregate_id,
        "41",
    )
    assert json.loads(box["headers"]) == {
        "event_id": str(event.event_id),
        "event_type": "CustomerRenamed",
        "schema_version": "2",
        "occurred_at": "2024-03-01T23:30:00+00:00",
        "aggregate_type": "Customer",
        "aggregate_version": "3",
        "position": "41",
    }
    assert json.loads(box["payload"]) == {
        "event_id": str(event.event_id),
        "aggregate_type": "Customer",
        "aggregate_id": event.aggregate_id,
        "aggregate_version": 3,
        "event_type": "CustomerRenamed",
        "schema_version": 2,
        "occurred_at": "2024-03-01T23:30:00+00:00",
        "payload": event.payload,
        "metadata": event.metadata,
        "position": 41,
        "recorded_at": "2026-12-01T11:00:00.5+00:00",
    }


def test_naive_time_is_refused() -> None:
    naive = NewEvent(uuid.uuid4(), "Customer", "c", 1, "X", {}, datetime(2024, 3, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        encode(naive, "customer.events")
