"""JSON Schemas of the event types the migration produces (registry version 1)."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None) -> Schema:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": sorted(required),
    }


ID = {"type": "integer", "minimum": 1}
TEXT = {"type": "string", "minLength": 1}
NULLABLE_TEXT = {"type": ["string", "null"]}

CUSTOMER = _object(
    {"customer_id": ID, "name": TEXT},
    {
        "email": NULLABLE_TEXT,
        "plan": NULLABLE_TEXT,
        "country": NULLABLE_TEXT,
        "metadata": {"type": "object"},
    },
)
DOCUMENT_UPLOADED = _object(
    {"document_id": ID, "customer_id": ID, "title": TEXT},
    {
        "category": NULLABLE_TEXT,
        "mime_type": NULLABLE_TEXT,
        "size_bytes": {"type": ["integer", "null"], "minimum": 0},
        "page_count": {"type": ["integer", "null"], "minimum": 1},
        "attributes": {"type": "object"},
    },
)
DOCUMENT_STATUS_CHANGED = _object({"document_id": ID, "status": TEXT})
OCR_PAGE = _object(
    {
        "page_id": ID,
        "document_id": ID,
        "page_number": {"type": "integer", "minimum": 1},
        "text": {"type": "string"},
    },
    {"confidence": {"type": ["number", "null"], "minimum": 0, "maximum": 1}},
)
JOB_STARTED = _object(
    {"job_id": ID, "document_id": ID, "service": TEXT},
    {"attempt": {"type": ["integer", "null"], "minimum": 1}},
)
JOB_FINISHED = _object(
    {"job_id": ID, "document_id": ID, "service": TEXT, "status": {"enum": ["completed", "failed"]}},
    {
        "duration_ms": {"type": ["integer", "null"], "minimum": 0},
        "error": NULLABLE_TEXT,
        "finished_at": NULLABLE_TEXT,
    },
)

EVENT_SCHEMAS: dict[str, Schema] = {
    "CustomerRegistered": CUSTOMER,
    "CustomerUpdated": CUSTOMER,
    "DocumentUploaded": DOCUMENT_UPLOADED,
    "DocumentStatusChanged": DOCUMENT_STATUS_CHANGED,
    "OcrPageExtracted": OCR_PAGE,
    "OcrPageCorrected": OCR_PAGE,
    "ProcessingJobStarted": JOB_STARTED,
    "ProcessingJobCompleted": JOB_FINISHED,
    "ProcessingJobFailed": JOB_FINISHED,
}


def registry_entries() -> list[tuple[str, int, Schema]]:
    """(type, version, schema) triples for `EventTypeRegistry.register_many`."""
    return [(name, 1, schema) for name, schema in EVENT_SCHEMAS.items()]
