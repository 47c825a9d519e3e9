"""yoyo migrations against a real Postgres: migrate, status, roll back all, migrate again.

Runs in a database of its own (created and dropped here), so rolling everything back never
pulls tables from under tests that share the main database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from strangler.db.cli import db_app
from strangler.db.migrations import MigrationError, migrate, rollback, status

pytestmark = pytest.mark.integration

ALL = [
    "001_monolith",
    "016_event_sourcing_infrastructure",
    "017_microservices_tracking",
    "018_migration_state_tracking",
    "019_consistency_reports",
    "020_rollback_snapshots",
    "021_partition_keys",
    "022_source_columns",
    "023_outbox_published",
]
SCHEMAS = ("monolith", "eventstore", "microservices", "migration_state", "rollback_snapshots")
TABLES = {
    "eventstore": {"events", "outbox", "snapshots", "event_types", "sagas"},
    "microservices": {"service_processing", "processing_log", "service_health", "sync_status"},
    "migration_state": {
        "migration_runs",
        "migration_checkpoints",
        "failed_entities",
        "migration_metrics",
        "kafka_offset_ranges",
        "rollback_requests",
        "rollback_reports",
        "consistency_reports",
        "rollback_snapshots",
        "source_columns",
        "outbox_published",
    },
}


def _with_db(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{dbname}", parts.query, ""))


@pytest.fixture
def scratch_url(postgres_url: str) -> Iterator[str]:
    name = f"strangler_mig_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_db(postgres_url, name)
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _columns(url: str, schema: str, table: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = %s",
            (schema, table),
        ).fetchall()
    return {r[0] for r in rows}


def _tables(url: str) -> dict[str, set[str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema = ANY(%s)",
            (list(SCHEMAS),),
        ).fetchall()
        schemas = {
            r[0]
            for r in conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", (list(SCHEMAS),)
            )
        }
    out: dict[str, set[str]] = {s: set() for s in schemas}
    for schema, table in rows:
        out[schema].add(table)
    return out


def test_migrate_status_rollback_all_and_migrate_again(scratch_url: str) -> None:
    assert [s.applied for s in status(scratch_url)] == [False] * len(ALL)

    assert migrate(scratch_url) == ALL
    tables = _tables(scratch_url)
    for schema, expected in TABLES.items():
        assert tables[schema] == expected
    st = status(scratch_url)
    assert [s.id for s in st] == ALL
    assert all(s.applied and s.applied_at is not None for s in st)
    assert migrate(scratch_url) == []

    assert rollback(scratch_url) == [ALL[-1]]
    assert "outbox_published" not in _tables(scratch_url)["migration_state"]
    assert "published_at" in _columns(scratch_url, "eventstore", "outbox")
    assert rollback(scratch_url) == ["022_source_columns"]
    assert "source_columns" not in _tables(scratch_url)["migration_state"]
    assert rollback(scratch_url) == ["021_partition_keys"]
    assert "partition_key" not in _columns(scratch_url, "eventstore", "events")
    assert rollback(scratch_url) == ["020_rollback_snapshots"]
    assert "rollback_snapshots" not in _tables(scratch_url)
    assert rollback(scratch_url, to="017_microservices_tracking") == [
        "019_consistency_reports",
        "018_migration_state_tracking",
    ]
    assert "migration_state" not in _tables(scratch_url)
    assert rollback(scratch_url, to="001_monolith") == [
        "017_microservices_tracking",
        "016_event_sourcing_infrastructure",
    ]
    assert [s.applied for s in status(scratch_url)] == [True] + [False] * (len(ALL) - 1)

    assert rollback(scratch_url, count=None) == ["001_monolith"]
    assert _tables(scratch_url) == {}
    assert [s.applied for s in status(scratch_url)] == [False] * len(ALL)
    assert rollback(scratch_url, count=None) == []

    assert migrate(scratch_url) == ALL
    for schema, expected in TABLES.items():
        assert _tables(scratch_url)[schema] == expected


def test_rollback_to_unknown_migration_is_refused(scratch_url: str) -> None:
    migrate(scratch_url)
    with pytest.raises(MigrationError, match="unknown migration 'nope'"):
        rollback(scratch_url, to="nope")
    assert all(s.applied for s in status(scratch_url))


def test_db_cli_migrate_status_rollback(scratch_url: str) -> None:
    runner = CliRunner()
    result = runner.invoke(db_app, ["migrate", "--url", scratch_url])
    assert result.exit_code == 0, result.output
    assert ALL[-1] in result.output
    result = runner.invoke(db_app, ["status", "--url", scratch_url])
    assert result.exit_code == 0 and result.output.count("yes") == len(ALL), result.output
    result = runner.invoke(
        db_app, ["rollback", "--url", scratch_url, "--to", "016_event_sourcing_infrastructure"]
    )
    assert result.exit_code == 0 and "017_microservices_tracking" in result.output, result.output
    result = runner.invoke(db_app, ["rollback", "--url", scratch_url, "--to", "missing"])
    assert result.exit_code == 1 and "unknown migration 'missing'" in result.output
    result = runner.invoke(db_app, ["rollback", "--url", scratch_url, "--all"])
    assert result.exit_code == 0, result.output
    assert [s.applied for s in status(scratch_url)] == [False] * len(ALL)
