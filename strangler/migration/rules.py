"""Validation rules a monolith row must pass before it becomes events.

Each rule is named by a `DirtKind`, so a failed row says exactly which rule it broke and where
(the contract with the sample's dirt lives in `strangler.sample.dirt`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from strangler.sample.dirt import CONTROL_CHARS_REGEX, DirtKind

CONTROL_CHARS = re.compile(CONTROL_CHARS_REGEX)

REQUIRED: dict[str, tuple[str, ...]] = {
    "customers": ("name",),
    "documents": ("title",),
    "ocr_pages": ("text",),
    "processing_jobs": ("status",),
}
TEXT_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("name",),
    "documents": ("title",),
    "ocr_pages": ("text",),
    "processing_jobs": (),
}
TIMESTAMP_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("updated_at",),
    "documents": ("updated_at",),
    "ocr_pages": ("updated_at",),
    "processing_jobs": ("finished_at", "updated_at"),
}
PARENT_FLAG = "parent_exists"
"""Computed by the extraction query: whether the referenced parent row exists."""
DUPLICATE_FLAG = "duplicate_of"
"""Computed by the extraction query: id of an earlier row with the same natural key, if any."""


@dataclass(frozen=True, slots=True)
class Violation:
    rule: DirtKind
    column: str
    message: str

    def __str__(self) -> str:
        return f"{self.rule.value} on {self.column}: {self.message}"


def violations(table: str, row: Mapping[str, Any], now: datetime) -> list[Violation]:
    """Every rule the row breaks (empty = clean). `row` carries the extraction flags too."""
    found: list[Violation] = []
    for column in REQUIRED[table]:
        if row.get(column) is None:
            found.append(Violation(DirtKind.NULL_REQUIRED, column, "required value is NULL"))
    for column in TEXT_COLUMNS[table]:
        value = row.get(column)
        if isinstance(value, str):
            match = CONTROL_CHARS.search(value)
            if match:
                found.append(
                    Violation(
                        DirtKind.CONTROL_CHARS,
                        column,
                        f"control character {match.group()!r} at offset {match.start()}",
                    )
                )
    if table == "documents":
        found.extend(_document_rules(row))
    elif table == "ocr_pages":
        found.extend(_page_rules(row))
    elif table == "processing_jobs":
        found.extend(_job_rules(row))
    if table != "customers" and row.get(PARENT_FLAG) is False:
        column = "customer_id" if table == "documents" else "document_id"
        found.append(
            Violation(DirtKind.ORPHAN_FK, column, f"no parent row with id {row.get(column)}")
        )
    if row.get(DUPLICATE_FLAG) is not None:
        column = "email" if table == "customers" else "(document_id, page_number)"
        found.append(
            Violation(
                DirtKind.DUPLICATE_NATURAL_KEY,
                column,
                f"same natural key as row {row[DUPLICATE_FLAG]}",
            )
        )
    for column in TIMESTAMP_COLUMNS[table]:
        value = row.get(column)
        if isinstance(value, datetime) and value > now:
            found.append(
                Violation(
                    DirtKind.FUTURE_TIMESTAMP,
                    column,
                    f"{value.isoformat()} is after {now.isoformat()}",
                )
            )
    return found


def _document_rules(row: Mapping[str, Any]) -> list[Violation]:
    found: list[Violation] = []
    attributes = row.get("attributes")
    if attributes is not None:
        try:
            json.loads(attributes)
        except (TypeError, ValueError) as exc:
            found.append(Violation(DirtKind.MALFORMED_JSON, "attributes", f"not JSON: {exc}"))
    pages = row.get("page_count")
    if pages is not None and pages < 1:
        found.append(Violation(DirtKind.OUT_OF_RANGE, "page_count", f"{pages} < 1"))
    return found


def _page_rules(row: Mapping[str, Any]) -> list[Violation]:
    confidence = row.get("confidence")
    if confidence is not None and not (Decimal(0) <= Decimal(str(confidence)) <= Decimal(1)):
        return [Violation(DirtKind.OUT_OF_RANGE, "confidence", f"{confidence} outside [0, 1]")]
    return []


def _job_rules(row: Mapping[str, Any]) -> list[Violation]:
    duration = row.get("duration_ms")
    if duration is not None and duration < 0:
        return [Violation(DirtKind.OUT_OF_RANGE, "duration_ms", f"{duration} < 0")]
    return []
