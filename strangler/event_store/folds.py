"""Fold functions: an aggregate's state as a plain dict, rebuilt from its events.

States hold JSON types only (string keys, no tuples or datetimes), so a snapshot stored as
jsonb and read back folds on exactly like the in-memory state: load() with snapshots equals a
full replay.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from strangler.event_store.model import RecordedEvent

State = dict[str, Any]
Apply = Callable[[State, RecordedEvent], State]


@dataclass(frozen=True, slots=True)
class Fold:
    """How to rebuild one aggregate type; bump ``version`` when ``apply`` changes meaning,
    so snapshots written by the old fold are ignored instead of trusted."""

    aggregate_type: str
    apply: Apply
    version: int = 1

    def initial(self, aggregate_id: str) -> State:
        return {"id": aggregate_id}


def _merge(state: State, event: RecordedEvent) -> State:
    return {**state, **event.payload, "updated_at": event.occurred_at.isoformat()}


def apply_customer(state: State, event: RecordedEvent) -> State:
    """Customer: registration sets the profile, later changes merge, deletion flags it."""
    if event.event_type == "CustomerRegistered":
        return {
            **state,
            **event.payload,
            "registered_at": event.occurred_at.isoformat(),
            "updated_at": event.occurred_at.isoformat(),
            "deleted": False,
        }
    if event.event_type == "CustomerDeleted":
        return {**state, "deleted": True, "updated_at": event.occurred_at.isoformat()}
    return _merge(state, event)


def apply_document(state: State, event: RecordedEvent) -> State:
    """Document: upload sets fields; status changes keep history; OCR pages and jobs add up."""
    at = event.occurred_at.isoformat()
    payload = event.payload
    if event.event_type == "DocumentUploaded":
        return {**state, **payload, "uploaded_at": at, "updated_at": at, "status_history": []}
    if event.event_type == "DocumentStatusChanged":
        history = [*state.get("status_history", []), {"status": payload.get("status"), "at": at}]
        return {
            **state,
            "status": payload.get("status"),
            "status_history": history,
            "updated_at": at,
        }
    if event.event_type == "OcrPageExtracted":
        pages = dict(state.get("ocr_pages", {}))
        pages[str(payload.get("page_number"))] = {
            "chars": len(payload.get("text") or ""),
            "confidence": payload.get("confidence"),
        }
        return {**state, "ocr_pages": pages, "updated_at": at}
    if event.event_type in ("ProcessingJobCompleted", "ProcessingJobFailed"):
        jobs = dict(state.get("jobs", {}))
        job_key = str(payload.get("job_id", payload.get("job_type", event.event_id)))
        jobs[job_key] = {
            "job_type": payload.get("job_type"),
            "status": "completed" if event.event_type == "ProcessingJobCompleted" else "failed",
            "at": at,
        }
        return {**state, "jobs": jobs, "updated_at": at}
    return _merge(state, event)


CUSTOMER_FOLD = Fold("Customer", apply_customer)
DOCUMENT_FOLD = Fold("Document", apply_document)
DEFAULT_FOLDS: tuple[Fold, ...] = (CUSTOMER_FOLD, DOCUMENT_FOLD)
