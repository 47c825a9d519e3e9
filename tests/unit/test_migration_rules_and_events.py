"""Rows -> violations and rows -> events, without any service."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from strangler.migration.events import row_events, topic_for
from strangler.migration.rules import violations
from strangler.migration.schemas import EVENT_SCHEMAS
from strangler.sample.dirt import DirtKind

NOW = datetime(2026, 11, 23, tzinfo=UTC)
T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)
DAY = date(2026, 11, 20)


def customer(**over: Any) -> dict[str, Any]:
    row = {
        "id": 7,
        "email": "a@example.com",
        "name": "Ada",
        "plan": "pro",
        "country": "NL",
        "metadata": {"seats": 1},
        "created_at": T0,
        "updated_at": T0,
        "duplicate_of": None,
    }
    return {**row, **over}


def document(**over: Any) -> dict[str, Any]:
    row = {
        "id": 11,
        "customer_id": 7,
        "title": "Invoice 1",
        "category": "invoice",
        "status": "processed",
        "page_count": 2,
        "mime_type": "application/pdf",
        "size_bytes": 1000,
        "attributes": '{"a": 1}',
        "created_at": T0,
        "updated_at": T0 + timedelta(minutes=5),
        "parent_exists": True,
    }
    return {**row, **over}


def page(**over: Any) -> dict[str, Any]:
    row = {
        "id": 21,
        "document_id": 11,
        "page_number": 1,
        "text": "Amount due",
        "confidence": Decimal("0.93"),
        "created_at": T0,
        "updated_at": T0,
        "parent_exists": True,
        "duplicate_of": None,
    }
    return {**row, **over}


def job(**over: Any) -> dict[str, Any]:
    row = {
        "id": 31,
        "document_id": 11,
        "service": "ocr",
        "status": "completed",
        "attempt": 1,
        "started_at": T0,
        "finished_at": T0 + timedelta(seconds=30),
        "duration_ms": 30_000,
        "error": None,
        "created_at": T0,
        "updated_at": T0 + timedelta(seconds=30),
        "parent_exists": True,
    }
    return {**row, **over}


@pytest.mark.parametrize(
    ("table", "row", "rule", "column"),
    [
        ("customers", customer(name=None), DirtKind.NULL_REQUIRED, "name"),
        ("documents", document(attributes="{not json"), DirtKind.MALFORMED_JSON, "attributes"),
        ("documents", document(parent_exists=False), DirtKind.ORPHAN_FK, "customer_id"),
        ("customers", customer(duplicate_of=3), DirtKind.DUPLICATE_NATURAL_KEY, "email"),
        ("ocr_pages", page(confidence=Decimal("1.7")), DirtKind.OUT_OF_RANGE, "confidence"),
        ("documents", document(page_count=-2), DirtKind.OUT_OF_RANGE, "page_count"),
        ("processing_jobs", job(duration_ms=-5), DirtKind.OUT_OF_RANGE, "duration_ms"),
        ("ocr_pages", page(text="bad\x1bbyte"), DirtKind.CONTROL_CHARS, "text"),
        ("documents", document(title="nul \\u0000 here"), DirtKind.CONTROL_CHARS, "title"),
        (
            "processing_jobs",
            job(finished_at=NOW + timedelta(days=90)),
            DirtKind.FUTURE_TIMESTAMP,
            "finished_at",
        ),
    ],
)
def test_each_dirt_kind_is_named(
    table: str, row: dict[str, Any], rule: DirtKind, column: str
) -> None:
    found = violations(table, row, NOW)
    assert [(v.rule, v.column) for v in found] == [(rule, column)]
    assert rule.value in str(found[0])


@pytest.mark.parametrize(
    ("table", "row"),
    [
        ("customers", customer()),
        ("documents", document()),
        ("ocr_pages", page()),
        ("processing_jobs", job()),
    ],
)
def test_clean_rows_pass_and_their_events_match_schemas(table: str, row: dict[str, Any]) -> None:
    assert violations(table, row, NOW) == []
    events = row_events(table, row, DAY)
    assert [e.aggregate_version for e in events] == list(range(1, len(events) + 1))
    for event in events:
        assert (
            list(Draft202012Validator(EVENT_SCHEMAS[event.event_type]).iter_errors(event.payload))
            == []
        )
        assert event.metadata["partition_day"] == "2026-11-20"
        assert topic_for(event).endswith(".events")


def test_event_ids_are_deterministic_and_change_with_late_edits() -> None:
    first = row_events("documents", document(), DAY)
    again = row_events("documents", document(), DAY)
    assert [e.event_id for e in first] == [e.event_id for e in again]
    edited = row_events(
        "documents", document(status="failed", updated_at=T0 + timedelta(days=2)), DAY
    )
    assert edited[0].event_id == first[0].event_id
    assert edited[1].event_id != first[1].event_id
    assert [e.event_type for e in edited] == ["DocumentUploaded", "DocumentStatusChanged"]


def test_job_events_follow_status() -> None:
    assert [e.event_type for e in row_events("processing_jobs", job(), DAY)] == [
        "ProcessingJobStarted",
        "ProcessingJobCompleted",
    ]
    assert [
        e.event_type for e in row_events("processing_jobs", job(status="failed", error="boom"), DAY)
    ] == ["ProcessingJobStarted", "ProcessingJobFailed"]
    assert [
        e.event_type
        for e in row_events("processing_jobs", job(status="running", finished_at=None), DAY)
    ] == ["ProcessingJobStarted"]
