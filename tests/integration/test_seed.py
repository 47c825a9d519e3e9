"""The sample monolith's seed against a real Postgres: deterministic, idempotent, dirty on purpose.

The dirt is counted here by SQL written from ``strangler.sample.dirt``'s contract, independently
of the generator, so a rule that follows that contract finds exactly what the report claims.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest

from strangler.db.migrations import migrate
from strangler.sample.dirt import CONTROL_CHARS_REGEX, DirtKind
from strangler.sample.seed import TABLES, SeedReport, seed

pytestmark = pytest.mark.integration

Conn = psycopg.Connection[Any]

START = date(2024, 3, 1)
DAYS = 7
ARGS: dict[str, Any] = {
    "seed": 11,
    "days": DAYS,
    "scale": 1.0,
    "dirty_rate": 0.05,
    "start_day": START,
}
RANGE_END = "(%(start)s::date + %(days)s * interval '1 day')::timestamptz"
UTC_DAY = "(({col}) AT TIME ZONE 'UTC')::date"

DIRT_SQL: dict[tuple[str, DirtKind], str] = {
    ("customers", DirtKind.NULL_REQUIRED): "SELECT count(*) FROM monolith.customers "
    "WHERE name IS NULL",
    ("documents", DirtKind.NULL_REQUIRED): "SELECT count(*) FROM monolith.documents "
    "WHERE title IS NULL",
    ("ocr_pages", DirtKind.NULL_REQUIRED): "SELECT count(*) FROM monolith.ocr_pages "
    "WHERE text IS NULL",
    ("processing_jobs", DirtKind.NULL_REQUIRED): "SELECT count(*) FROM monolith.processing_jobs "
    "WHERE status IS NULL",
    ("documents", DirtKind.MALFORMED_JSON): "SELECT count(*) FROM monolith.documents "
    "WHERE NOT pg_input_is_valid(attributes, 'jsonb')",
    ("documents", DirtKind.ORPHAN_FK): "SELECT count(*) FROM monolith.documents d "
    "WHERE NOT EXISTS (SELECT 1 FROM monolith.customers c WHERE c.id = d.customer_id)",
    ("ocr_pages", DirtKind.ORPHAN_FK): "SELECT count(*) FROM monolith.ocr_pages p "
    "WHERE NOT EXISTS (SELECT 1 FROM monolith.documents d WHERE d.id = p.document_id)",
    ("processing_jobs", DirtKind.ORPHAN_FK): "SELECT count(*) FROM monolith.processing_jobs j "
    "WHERE NOT EXISTS (SELECT 1 FROM monolith.documents d WHERE d.id = j.document_id)",
    ("customers", DirtKind.DUPLICATE_NATURAL_KEY): "SELECT count(*) - count(DISTINCT email) "
    "FROM monolith.customers WHERE email IS NOT NULL",
    ("ocr_pages", DirtKind.DUPLICATE_NATURAL_KEY): "SELECT count(*) FROM ("
    "SELECT row_number() OVER (PARTITION BY document_id, page_number ORDER BY id) AS n "
    "FROM monolith.ocr_pages) k WHERE n > 1",
    ("documents", DirtKind.OUT_OF_RANGE): "SELECT count(*) FROM monolith.documents "
    "WHERE page_count < 1",
    ("ocr_pages", DirtKind.OUT_OF_RANGE): "SELECT count(*) FROM monolith.ocr_pages "
    "WHERE confidence < 0 OR confidence > 1",
    ("processing_jobs", DirtKind.OUT_OF_RANGE): "SELECT count(*) FROM monolith.processing_jobs "
    "WHERE duration_ms < 0",
    ("customers", DirtKind.CONTROL_CHARS): "SELECT count(*) FROM monolith.customers "
    "WHERE name ~ %(regex)s",
    ("documents", DirtKind.CONTROL_CHARS): "SELECT count(*) FROM monolith.documents "
    "WHERE title ~ %(regex)s",
    ("ocr_pages", DirtKind.CONTROL_CHARS): "SELECT count(*) FROM monolith.ocr_pages "
    "WHERE text ~ %(regex)s",
    ("customers", DirtKind.FUTURE_TIMESTAMP): "SELECT count(*) FROM monolith.customers "
    f"WHERE updated_at >= {RANGE_END}",
    ("documents", DirtKind.FUTURE_TIMESTAMP): "SELECT count(*) FROM monolith.documents "
    f"WHERE updated_at >= {RANGE_END}",
    ("processing_jobs", DirtKind.FUTURE_TIMESTAMP): "SELECT count(*) "
    f"FROM monolith.processing_jobs WHERE finished_at >= {RANGE_END}",
}

CHECKSUM_SQL = {
    table: f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t.id), '')) "
    f"FROM monolith.{table} t"
    for table in TABLES
}


@pytest.fixture(scope="module")
def conn(postgres_url: str) -> Iterator[Conn]:
    """One connection for the module; the seed's advisory lock serializes other seeders."""
    migrate(postgres_url)
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        yield connection


@pytest.fixture(scope="module")
def seeded(conn: Conn) -> SeedReport:
    return seed(conn, **ARGS)


def _checksums(conn: Conn) -> dict[str, tuple[Any, ...]]:
    result = {}
    for table, query in CHECKSUM_SQL.items():
        row = conn.execute(query).fetchone()
        assert row is not None
        result[table] = tuple(row)
    return result


def _scalar(conn: Conn, query: str) -> int:
    params = {"regex": CONTROL_CHARS_REGEX, "start": START, "days": DAYS}
    row = conn.execute(query, params if "%(" in query else None).fetchone()
    assert row is not None
    return int(row[0])


def test_counts_match_report(conn: Conn, seeded: SeedReport) -> None:
    for table in TABLES:
        assert _scalar(conn, f"SELECT count(*) FROM monolith.{table}") == seeded.rows[table]
    assert 180 <= seeded.rows["customers"] <= 220
    assert 900 <= seeded.rows["documents"] <= 1_100
    assert 2_500 <= seeded.rows["ocr_pages"] <= 3_600
    assert 1_300 <= seeded.rows["processing_jobs"] <= 1_700


def test_every_dirt_kind_is_present_and_counted_exactly_by_sql(
    conn: Conn, seeded: SeedReport
) -> None:
    for kind in DirtKind:
        assert seeded.dirty[kind] > 0, kind
    for (table, kind), query in DIRT_SQL.items():
        assert _scalar(conn, query) == seeded.dirty_by_table[table][kind], (table, kind)
    counted = {(t, k) for t, counts in seeded.dirty_by_table.items() for k in counts}
    assert counted <= set(DIRT_SQL), "a dirt kind landed in a column the contract does not name"
    total = seeded.total_dirty / seeded.total_rows
    assert 0.03 < total < 0.07


def test_rows_spread_over_every_day_of_the_range(conn: Conn, seeded: SeedReport) -> None:
    expected = [START + timedelta(days=d) for d in range(DAYS)]
    for table in TABLES:
        days = conn.execute(
            f"SELECT {UTC_DAY.format(col='created_at')} AS day, count(*) "
            f"FROM monolith.{table} GROUP BY 1 ORDER BY 1"
        ).fetchall()
        assert [d for d, _ in days] == expected, table
        counts = [int(n) for _, n in days]
        assert min(counts) > 0.2 * max(counts), (table, counts)


def test_late_edits_move_updated_at_to_a_later_day(conn: Conn, seeded: SeedReport) -> None:
    assert seeded.late_edits["documents"] > 0
    for table in TABLES:
        late = _scalar(
            conn,
            f"SELECT count(*) FROM monolith.{table} WHERE updated_at > created_at + "
            f"interval '1 hour' AND updated_at < {RANGE_END}",
        )
        assert late == seeded.late_edits[table], table
        on_later_day = _scalar(
            conn,
            f"SELECT count(*) FROM monolith.{table} WHERE updated_at > created_at + "
            f"interval '1 hour' AND updated_at < {RANGE_END} AND "
            f"{UTC_DAY.format(col='updated_at')} > {UTC_DAY.format(col='created_at')}",
        )
        assert on_later_day == late, table


def test_clean_timestamps_stay_inside_the_range(conn: Conn, seeded: SeedReport) -> None:
    for table in TABLES:
        outside = _scalar(
            conn,
            f"SELECT count(*) FROM monolith.{table} WHERE created_at < %(start)s::date "
            f"OR created_at >= {RANGE_END}",
        )
        assert outside == 0, table


def test_children_are_not_older_than_their_parents(conn: Conn, seeded: SeedReport) -> None:
    assert (
        _scalar(
            conn,
            "SELECT count(*) FROM monolith.documents d JOIN monolith.customers c "
            "ON c.id = d.customer_id WHERE d.created_at < c.created_at",
        )
        == 0
    )
    assert (
        _scalar(
            conn,
            "SELECT count(*) FROM monolith.ocr_pages p JOIN monolith.documents d "
            "ON d.id = p.document_id WHERE p.created_at < d.created_at",
        )
        == 0
    )


def test_ocr_text_reads_like_its_category(conn: Conn, seeded: SeedReport) -> None:
    rows = conn.execute(
        "SELECT d.category, count(*) FROM monolith.ocr_pages p "
        "JOIN monolith.documents d ON d.id = p.document_id "
        "WHERE p.text ILIKE '%overdue%' GROUP BY 1"
    ).fetchall()
    assert dict(rows).keys() == {"invoice"}
    words = conn.execute(
        "SELECT min(array_length(regexp_split_to_array(trim(text), '\\s+'), 1)), "
        "max(array_length(regexp_split_to_array(trim(text), '\\s+'), 1)) "
        "FROM monolith.ocr_pages WHERE text IS NOT NULL"
    ).fetchone()
    assert words is not None
    assert int(words[0]) >= 40 and int(words[1]) <= 130


def test_default_range_ends_yesterday_and_future_dirt_is_after_now(
    conn: Conn, seeded: SeedReport
) -> None:
    try:
        report = seed(conn, seed=5, days=3, scale=0.3, dirty_rate=0.2)
        today = datetime.now(UTC).date()
        assert report.end_day == today - timedelta(days=1)
        row = conn.execute(
            "SELECT max(created_at) < %(today)s::date, "
            "(SELECT count(*) FROM monolith.documents WHERE updated_at > now()) "
            "FROM monolith.documents",
            {"today": today},
        ).fetchone()
        assert row is not None
        assert row[0] is True
        assert row[1] == report.dirty_by_table["documents"][DirtKind.FUTURE_TIMESTAMP] > 0
    finally:
        seed(conn, **ARGS)


def test_seed_is_deterministic_and_reseeding_is_idempotent(conn: Conn, seeded: SeedReport) -> None:
    first = _checksums(conn)
    other = seed(conn, **{**ARGS, "seed": 12, "scale": 0.5})
    assert other.rows["documents"] == 500
    assert _checksums(conn) != first
    again = seed(conn, **ARGS)
    assert _checksums(conn) == first
    assert again.rows == seeded.rows
    assert again.dirty_by_table == seeded.dirty_by_table
    assert again.late_edits == seeded.late_edits


def test_sequences_continue_after_the_seeded_ids(conn: Conn, seeded: SeedReport) -> None:
    with conn.transaction(force_rollback=True):
        row = conn.execute(
            "INSERT INTO monolith.customers (email, name) VALUES ('new@example.com', 'New') "
            "RETURNING id"
        ).fetchone()
        assert row is not None
        assert row[0] == seeded.rows["customers"] + 1


def test_replace_false_refuses_a_filled_sample(conn: Conn, seeded: SeedReport) -> None:
    with pytest.raises(ValueError, match="not empty"):
        seed(conn, **ARGS, replace=False)
