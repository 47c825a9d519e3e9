"""Monolith rows -> domain events with deterministic ids.

Each source row is one aggregate stream. The events a row yields depend only on its current
state, and each event id is uuid5(table, primary key, change), so re-running a day appends
nothing twice while a late edit (a new status, a newer `updated_at`) appends exactly the new
change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from strangler.event_store.model import NewEvent, event_id_for

AGGREGATE_TYPES: dict[str, str] = {
    "customers": "Customer",
    "documents": "Document",
    "ocr_pages": "OcrPage",
    "processing_jobs": "ProcessingJob",
}
TOPICS: dict[str, str] = {
    "Customer": "customers.events",
    "Document": "documents.events",
    "OcrPage": "ocr.events",
    "ProcessingJob": "processing.events",
}
FINISHED_JOB_EVENTS = {"completed": "ProcessingJobCompleted", "failed": "ProcessingJobFailed"}


def topic_for(event: NewEvent, prefix: str = "") -> str:
    return f"{prefix}{TOPICS[event.aggregate_type]}"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _number(value: Decimal | float | int | None) -> float | int | None:
    if isinstance(value, Decimal):
        return float(value)
    return value


def row_events(table: str, row: Mapping[str, Any], partition_day: date) -> list[NewEvent]:
    """The events a clean row stands for, versions numbered from 1 in stream order."""
    pk = str(row["id"])
    aggregate_type = AGGREGATE_TYPES[table]
    metadata = {"source_table": table, "source_id": pk, "partition_day": partition_day.isoformat()}
    changes = _changes(table, row)
    return [
        NewEvent(
            event_id=event_id_for(table, pk, change),
            aggregate_type=aggregate_type,
            aggregate_id=pk,
            aggregate_version=version,
            event_type=event_type,
            payload=payload,
            occurred_at=occurred_at,
            metadata=metadata,
        )
        for version, (change, event_type, occurred_at, payload) in enumerate(changes, start=1)
    ]


Change = tuple[str, str, datetime, dict[str, Any]]


def _changes(table: str, row: Mapping[str, Any]) -> list[Change]:
    if table == "customers":
        return _customer(row)
    if table == "documents":
        return _document(row)
    if table == "ocr_pages":
        return _page(row)
    if table == "processing_jobs":
        return _job(row)
    raise ValueError(f"no event mapping for table {table!r}")


def _customer(row: Mapping[str, Any]) -> list[Change]:
    state = {
        "customer_id": row["id"],
        "email": row["email"],
        "name": row["name"],
        "plan": row["plan"],
        "country": row["country"],
        "metadata": row["metadata"] if row["metadata"] is not None else {},
    }
    changes: list[Change] = [("registered", "CustomerRegistered", row["created_at"], state)]
    if row["updated_at"] > row["created_at"]:
        changes.append(
            (f"updated:{_iso(row['updated_at'])}", "CustomerUpdated", row["updated_at"], state)
        )
    return changes


def _document(row: Mapping[str, Any]) -> list[Change]:
    uploaded = {
        "document_id": row["id"],
        "customer_id": row["customer_id"],
        "title": row["title"],
        "category": row["category"],
        "mime_type": row["mime_type"],
        "size_bytes": row["size_bytes"],
        "page_count": row["page_count"],
        "attributes": json.loads(row["attributes"]) if row["attributes"] is not None else {},
    }
    changes: list[Change] = [("uploaded", "DocumentUploaded", row["created_at"], uploaded)]
    if row["status"] is not None and row["status"] != "uploaded":
        changes.append(
            (
                f"status:{row['status']}:{_iso(row['updated_at'])}",
                "DocumentStatusChanged",
                row["updated_at"],
                {"document_id": row["id"], "status": row["status"]},
            )
        )
    return changes


def _page(row: Mapping[str, Any]) -> list[Change]:
    payload = {
        "page_id": row["id"],
        "document_id": row["document_id"],
        "page_number": row["page_number"],
        "text": row["text"],
        "confidence": _number(row["confidence"]),
    }
    changes: list[Change] = [("extracted", "OcrPageExtracted", row["created_at"], payload)]
    if row["updated_at"] > row["created_at"]:
        changes.append(
            (f"corrected:{_iso(row['updated_at'])}", "OcrPageCorrected", row["updated_at"], payload)
        )
    return changes


def _job(row: Mapping[str, Any]) -> list[Change]:
    started_at = row["started_at"] or row["created_at"]
    changes: list[Change] = [
        (
            "started",
            "ProcessingJobStarted",
            started_at,
            {
                "job_id": row["id"],
                "document_id": row["document_id"],
                "service": row["service"],
                "attempt": row["attempt"],
            },
        )
    ]
    finished = FINISHED_JOB_EVENTS.get(row["status"])
    if finished is not None:
        changes.append(
            (
                f"finished:{row['status']}",
                finished,
                row["finished_at"] or row["updated_at"],
                {
                    "job_id": row["id"],
                    "document_id": row["document_id"],
                    "service": row["service"],
                    "status": row["status"],
                    "duration_ms": row["duration_ms"],
                    "error": row["error"],
                    "finished_at": _iso(row["finished_at"]),
                },
            )
        )
    return changes
