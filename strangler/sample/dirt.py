"""The kinds of dirt the sample monolith is seeded with, and exactly where each one lives.

The migration's validation names the rule a row broke; this module is the contract between the
seed (which plants the dirt) and those rules (which must find it). Every dirty row carries
exactly one kind, in exactly one of the columns listed for that kind:

- ``null_required``: ``customers.name``, ``documents.title``, ``ocr_pages.text``,
  ``processing_jobs.status``. Rule: the column IS NULL.
- ``malformed_json``: ``documents.attributes`` (JSON kept in text). Rule: it does not parse as
  JSON (``json.loads`` fails; in SQL ``NOT pg_input_is_valid(attributes, 'jsonb')``).
- ``orphan_fk``: ``documents.customer_id``, ``ocr_pages.document_id``,
  ``processing_jobs.document_id``. Rule: no parent row has that id.
- ``duplicate_natural_key``: ``customers.email``, ``ocr_pages (document_id, page_number)``.
  Rule: another row with a lower id has the same key; the rows after the first are the dirt.
- ``out_of_range``: ``documents.page_count`` (< 1), ``ocr_pages.confidence`` (outside [0, 1]),
  ``processing_jobs.duration_ms`` (< 0).
- ``control_chars``: ``customers.name``, ``documents.title``, ``ocr_pages.text``. Rule: matches
  ``CONTROL_CHARS_REGEX``: a C0 control other than tab, newline and CR, or DEL, or the literal
  six characters ``\\u0000`` (see below). Clean text holds newlines but none of these.
- ``future_timestamp``: ``customers.updated_at``, ``documents.updated_at``,
  ``processing_jobs.finished_at``. Rule: later than the end of the seeded range (with the
  default range, which ends yesterday, later than ``now()``).

Postgres ``text`` cannot hold a NUL byte, so a NUL that a legacy writer would have sent is stored
the way such systems usually leak it: as the literal escape ``\\u0000`` (backslash, u, 0000).
The other control characters (``\\x01``, ``\\x07``, ``\\x1b``, ``\\x7f`` ...) are stored as is.
"""

from __future__ import annotations

from enum import StrEnum

from strangler.migration import rules
from strangler.migration.rules import CONTROL_CHARS_REGEX

__all__ = ["CONTROL_CHARS_REGEX", "DirtKind"]


class DirtKind(StrEnum):
    """One kind of bad data a legacy monolith accumulates; values are stable rule names."""

    NULL_REQUIRED = rules.NULL_REQUIRED
    MALFORMED_JSON = rules.MALFORMED_JSON
    ORPHAN_FK = rules.ORPHAN_FK
    DUPLICATE_NATURAL_KEY = rules.DUPLICATE_NATURAL_KEY
    OUT_OF_RANGE = rules.OUT_OF_RANGE
    CONTROL_CHARS = rules.CONTROL_CHARS_RULE
    FUTURE_TIMESTAMP = rules.FUTURE_TIMESTAMP

    @property
    def description(self) -> str:
        return DESCRIPTIONS[self]

    @property
    def columns(self) -> tuple[str, ...]:
        """``table.column`` (or ``table.(a, b)`` for a composite key) this kind can touch."""
        return tuple(f"{table}.{column}" for table, column in TARGETS[self].items())


DESCRIPTIONS: dict[DirtKind, str] = {
    DirtKind.NULL_REQUIRED: "a column the domain requires is NULL",
    DirtKind.MALFORMED_JSON: "a text column meant to hold JSON does not parse",
    DirtKind.ORPHAN_FK: "a reference to a parent row that does not exist",
    DirtKind.DUPLICATE_NATURAL_KEY: "a second row with an existing natural key",
    DirtKind.OUT_OF_RANGE: "a number outside its domain (negative count, confidence > 1)",
    DirtKind.CONTROL_CHARS: "control characters or an escaped NUL inside text",
    DirtKind.FUTURE_TIMESTAMP: "a timestamp after the seeded range (in the future)",
}

TARGETS: dict[DirtKind, dict[str, str]] = {
    DirtKind.NULL_REQUIRED: {
        "customers": "name",
        "documents": "title",
        "ocr_pages": "text",
        "processing_jobs": "status",
    },
    DirtKind.MALFORMED_JSON: {"documents": "attributes"},
    DirtKind.ORPHAN_FK: {
        "documents": "customer_id",
        "ocr_pages": "document_id",
        "processing_jobs": "document_id",
    },
    DirtKind.DUPLICATE_NATURAL_KEY: {
        "customers": "email",
        "ocr_pages": "(document_id, page_number)",
    },
    DirtKind.OUT_OF_RANGE: {
        "documents": "page_count",
        "ocr_pages": "confidence",
        "processing_jobs": "duration_ms",
    },
    DirtKind.CONTROL_CHARS: {
        "customers": "name",
        "documents": "title",
        "ocr_pages": "text",
    },
    DirtKind.FUTURE_TIMESTAMP: {
        "customers": "updated_at",
        "documents": "updated_at",
        "processing_jobs": "finished_at",
    },
}
"""kind -> {table: column}: the one column of each table a kind may touch."""


def kinds_for(table: str) -> tuple[DirtKind, ...]:
    """The dirt kinds a row of ``table`` can carry, in enum order (stable for determinism)."""
    return tuple(kind for kind in DirtKind if table in TARGETS[kind])
