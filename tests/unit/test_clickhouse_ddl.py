"""ClickHouse DDL rendering (single node and cluster) and event flattening: pure, no services."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from strangler.analytics.ddl import (
    DdlError,
    DdlOptions,
    default_schema,
    derivation_sql,
    load_schema,
    quote_identifier,
    render,
    schema_sql,
    staging_table_sql,
)
from strangler.analytics.flatten import COLUMNS, EVENTS_SCHEMA, EventColumns, flatten, to_arrow
from strangler.analytics.swap import partition_id
from strangler.migration.kafka_records import EventRecord


def test_schema_parses_tables_views_and_derivations() -> None:
    schema = default_schema()
    assert [m.version for m in schema.migrations] == [1, 2, 3]
    assert schema.loaded_tables == ("events",)
    assert schema.swapped_tables == (
        "events",
        "document_processing",
        "event_counts_daily",
        "processing_latency_daily",
        "documents_status_daily",
    )
    assert {v.view for v in schema.views} == {
        "event_counts_daily_mv",
        "processing_latency_daily_mv",
        "documents_status_daily_mv",
    }
    assert all(v.source == "events" for v in schema.views)
    assert [d.target for d in schema.derived] == ["document_processing"]


def test_single_node_rendering() -> None:
    sql = schema_sql(DdlOptions(database="analytics"))
    text = "\n".join(sql)
    assert sql[0] == "CREATE DATABASE IF NOT EXISTS `analytics`"
    assert "ON CLUSTER" not in text
    assert "Replicated" not in text
    assert "{{" not in text
    assert "CREATE TABLE IF NOT EXISTS `analytics`.`events`\n(" in text
    assert "ENGINE = MergeTree\nPARTITION BY partition_day" in text
    assert "ENGINE = AggregatingMergeTree" in text
    assert "ENGINE = SummingMergeTree" in text
    assert "TO `analytics`.`event_counts_daily`" in text
    assert "event_type         LowCardinality(String)" in text
    assert "occurred_at        DateTime64(3, 'UTC')" in text
    # comments are not shipped: they hold placeholder examples
    assert "--" not in text


def test_cluster_rendering() -> None:
    sql = schema_sql(DdlOptions(database="an_1", cluster="prod"))
    assert sql[0] == "CREATE DATABASE IF NOT EXISTS `an_1` ON CLUSTER `prod`"
    creates = [s for s in sql if s.startswith("CREATE")]
    assert all(" ON CLUSTER `prod`" in s for s in creates)
    engines = [s for s in sql if "ENGINE" in s]
    assert engines and all("ENGINE = Replicated" in s for s in engines)
    events = next(s for s in sql if "`an_1`.`events` ON CLUSTER" in s)
    assert (
        "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')"
        in events
    )
    assert any("ReplicatedAggregatingMergeTree('/clickhouse/tables/" in s for s in sql)
    assert any("ReplicatedReplacingMergeTree(" in s and "_schema_versions" in s for s in sql)


def test_engine_arguments_follow_the_replication_arguments() -> None:
    tpl = "CREATE TABLE IF NOT EXISTS {{db}}.`t`{{on_cluster}} (v UInt8) ENGINE = {{engine ReplacingMergeTree(v)}} ORDER BY v"
    assert render(tpl, DdlOptions(database="d")).endswith(
        "ENGINE = ReplacingMergeTree(v) ORDER BY v"
    )
    clustered = render(tpl, DdlOptions(database="d", cluster="c"))
    assert "`d`.`t` ON CLUSTER `c`" in clustered
    assert (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', v)"
        in clustered
    )


def test_staging_twin_and_derivation_point_at_twins() -> None:
    schema = default_schema()
    opts = DdlOptions(database="analytics", cluster="c")
    (twin,) = staging_table_sql(schema, "events", "events__stage_20240501", opts)
    assert twin.startswith(
        "CREATE TABLE IF NOT EXISTS `analytics`.`events__stage_20240501` ON CLUSTER `c`"
    )
    view = next(v for v in schema.views if v.target == "event_counts_daily")
    sql = derivation_sql(
        view,
        opts,
        {"events": "events__stage_20240501", "event_counts_daily": "event_counts_daily__s"},
    )
    assert sql.startswith("INSERT INTO `analytics`.`event_counts_daily__s` SELECT")
    assert "FROM `analytics`.`events__stage_20240501`" in sql
    assert "`analytics`.`events`" not in sql


@pytest.mark.parametrize(
    "bad", ["", "1abc", "a-b", "a b", "a`b", "x;DROP TABLE y", "ä", "a.b", "analytics`"]
)
def test_identifiers_are_validated(bad: str) -> None:
    with pytest.raises(ValueError):
        quote_identifier(bad)
    with pytest.raises(ValueError):
        DdlOptions(database=bad)
    with pytest.raises(ValueError):
        DdlOptions(database="ok", cluster=bad)


def test_quote_identifier_accepts_plain_names() -> None:
    assert quote_identifier("_a1") == "`_a1`"
    with pytest.raises(ValueError):
        DdlOptions(replica_path="/x/'; DROP")


def test_load_schema_rejects_unknown_statements(tmp_path: Path) -> None:
    (tmp_path / "001_x.sql").write_text("DROP TABLE {{db}}.`events`;\n")
    with pytest.raises(DdlError, match="unsupported statement"):
        load_schema(tmp_path)


def test_load_schema_rejects_bad_file_names(tmp_path: Path) -> None:
    (tmp_path / "x.sql").write_text("SELECT 1;\n")
    with pytest.raises(DdlError, match="NNN_name"):
        load_schema(tmp_path)


def test_unknown_placeholder_is_an_error() -> None:
    with pytest.raises(DdlError):
        render("SELECT {{nope}}", DdlOptions())


def test_partition_id_from_a_date_only() -> None:
    assert partition_id(date(2024, 5, 1)) == "20240501"
    with pytest.raises(TypeError):
        partition_id("2024-05-01')--")  # type: ignore[arg-type]


def _record(event_type: str, payload: dict[str, Any], **kw: Any) -> EventRecord:
    base: dict[str, Any] = {
        "event_id": uuid.UUID(int=7),
        "event_type": event_type,
        "schema_version": 1,
        "aggregate_type": "Document",
        "aggregate_id": "42",
        "aggregate_version": 2,
        "occurred_at": datetime(2024, 5, 1, 10, 0, 0, 123000, tzinfo=UTC),
        "partition_day": "2024-05-01",
        "payload": payload,
        "metadata": {},
        "position": 99,
        "topic": "documents.events",
        "kafka_partition": 1,
        "offset": 17,
    }
    base.update(kw)
    return EventRecord(**base)


def test_flatten_document_uploaded() -> None:
    row = flatten(
        _record(
            "DocumentUploaded",
            {
                "document_id": 42,
                "customer_id": 3,
                "title": "x",
                "category": "invoice",
                "mime_type": "application/pdf",
                "size_bytes": 1234,
                "page_count": 2,
                "attributes": {},
            },
        )
    )
    assert set(row) == set(COLUMNS)
    assert row["event_id"] == uuid.UUID(int=7).bytes
    assert row["partition_day"] == date(2024, 5, 1)
    assert (row["customer_id"], row["document_id"], row["page_id"], row["job_id"]) == (3, 42, 0, 0)
    assert row["status"] == "uploaded"
    assert (row["category"], row["size_bytes"], row["page_count"]) == ("invoice", 1234, 2)
    assert row["duration_ms"] is None and row["confidence"] is None
    assert (row["source_topic"], row["kafka_partition"], row["kafka_offset"]) == (
        "documents.events",
        1,
        17,
    )


def test_flatten_job_and_page_and_bad_values() -> None:
    job = flatten(
        _record(
            "ProcessingJobFailed",
            {
                "job_id": 5,
                "document_id": 42,
                "service": "ocr",
                "status": "failed",
                "duration_ms": 61_000,
                "error": "timeout",
            },
            aggregate_type="ProcessingJob",
        )
    )
    assert (job["job_id"], job["service"], job["status"], job["duration_ms"], job["error"]) == (
        5,
        "ocr",
        "failed",
        61_000,
        "timeout",
    )
    started = flatten(_record("ProcessingJobStarted", {"job_id": 5, "attempt": 2}))
    assert (started["status"], started["attempt"]) == ("started", 2)
    page = flatten(
        _record(
            "OcrPageExtracted",
            {"page_id": 9, "document_id": 42, "page_number": 1, "text": "héllo", "confidence": 0.5},
        )
    )
    assert (page["page_id"], page["text_length"], page["confidence"]) == (9, 5, 0.5)
    bad = flatten(
        _record(
            "ProcessingJobCompleted",
            {
                "job_id": -1,
                "document_id": "x",
                "duration_ms": -5,
                "attempt": 10**9,
                "confidence": True,
            },
        )
    )
    assert (bad["job_id"], bad["document_id"], bad["duration_ms"], bad["attempt"]) == (
        0,
        0,
        None,
        0,
    )
    assert bad["confidence"] is None


def test_flatten_converts_times_to_utc() -> None:
    cet = timezone(timedelta(hours=2))
    row = flatten(
        _record("DocumentStatusChanged", {}, occurred_at=datetime(2024, 5, 1, 12, tzinfo=cet))
    )
    assert row["occurred_at"] == datetime(2024, 5, 1, 10, tzinfo=UTC)
    naive = flatten(_record("DocumentStatusChanged", {}, occurred_at=datetime(2024, 5, 1, 12)))
    assert naive["occurred_at"] == datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_columns_buffer_to_arrow() -> None:
    buffer = EventColumns()
    buffer.extend(
        _record(
            "DocumentStatusChanged",
            {"document_id": i, "status": "processed"},
            event_id=uuid.UUID(int=i),
        )
        for i in range(1, 4)
    )
    assert len(buffer) == 3
    assert buffer.event_ids()[0] == uuid.UUID(int=1).bytes
    table = buffer.take()
    assert len(buffer) == 0
    assert table.schema == EVENTS_SCHEMA
    assert table.num_rows == 3
    assert table.column("document_id").to_pylist() == [1, 2, 3]
    assert to_arrow([]).num_rows == 0
