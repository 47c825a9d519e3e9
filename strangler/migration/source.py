"""Reading one day of the monolith: the rows, with the flags the rules need."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

SCHEMA = "monolith"
TABLES: tuple[str, ...] = ("customers", "documents", "ocr_pages", "processing_jobs")
"""Migration order: parents before children."""

_FLAGS: dict[str, str] = {
    "customers": (
        "(SELECT min(o.id) FROM {s}.customers o WHERE o.email = t.email AND o.id < t.id)"
        " AS duplicate_of"
    ),
    "documents": (
        "EXISTS (SELECT 1 FROM {s}.customers p WHERE p.id = t.customer_id) AS parent_exists"
    ),
    "ocr_pages": (
        "EXISTS (SELECT 1 FROM {s}.documents p WHERE p.id = t.document_id) AS parent_exists,"
        " (SELECT min(o.id) FROM {s}.ocr_pages o WHERE o.document_id = t.document_id"
        "  AND o.page_number = t.page_number AND o.id < t.id) AS duplicate_of"
    ),
    "processing_jobs": (
        "EXISTS (SELECT 1 FROM {s}.documents p WHERE p.id = t.document_id) AS parent_exists"
    ),
}


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _check_table(table: str) -> None:
    if table not in TABLES:
        raise ValueError(f"unknown monolith table {table!r}; expected one of {TABLES}")


def count_rows(conn: psycopg.Connection[Any], table: str, day: date, after_id: int = 0) -> int:
    _check_table(table)
    start, end = day_bounds(day)
    query = sql.SQL(
        "SELECT count(*) FROM {}.{} WHERE created_at >= %s AND created_at < %s AND id > %s"
    ).format(sql.Identifier(SCHEMA), sql.Identifier(table))
    row = conn.execute(query, (start, end, after_id)).fetchone()
    return int(row[0]) if row else 0


def stream_rows(
    conn: psycopg.Connection[Any], table: str, day: date, *, after_id: int, batch_size: int
) -> Iterator[list[dict[str, Any]]]:
    """Batches of the day's rows in id order, through a server-side cursor (flat memory).

    `conn` must be dedicated to reading: the cursor lives in its open transaction.
    """
    _check_table(table)
    start, end = day_bounds(day)
    flags = sql.SQL(_FLAGS[table]).format(s=sql.Identifier(SCHEMA))
    query = sql.SQL(
        "SELECT t.*, {flags} FROM {s}.{t} t"
        " WHERE t.created_at >= %s AND t.created_at < %s AND t.id > %s ORDER BY t.id"
    ).format(flags=flags, s=sql.Identifier(SCHEMA), t=sql.Identifier(table))
    with conn.cursor(name=f"strangler_{table}", row_factory=dict_row) as cur:
        cur.itersize = batch_size
        cur.execute(query, (start, end, after_id))
        while True:
            rows = cur.fetchmany(batch_size)
            if not rows:
                return
            yield rows


def day_watermarks(conn: psycopg.Connection[Any], table: str) -> dict[str, tuple[int, datetime]]:
    """Per UTC day of created_at: row count and max(updated_at), so late edits are visible."""
    _check_table(table)
    query = sql.SQL(
        "SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*), max(updated_at)"
        " FROM {}.{} GROUP BY 1 ORDER BY 1"
    ).format(sql.Identifier(SCHEMA), sql.Identifier(table))
    return {row[0].isoformat(): (int(row[1]), row[2]) for row in conn.execute(query)}
