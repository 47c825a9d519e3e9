"""ClickHouse DDL: the generic tables, the spec's current-state tables and the user's analytics
folder; rendering (single node and cluster), the type mapping, partition ids. Pure, no services
(the embedded engine runs in-process where a test needs ClickHouse to evaluate SQL)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from strangler.analytics.ddl import (
    DdlError,
    DdlOptions,
    build_schema,
    default_schema,
    derivation_sql,
    load_schema,
    quote_identifier,
    render,
    schema_sql,
    staging_table_sql,
)
from strangler.analytics.state import (
    PG_TO_CLICKHOUSE,
    base_type,
    column_type,
    extract_sql,
    state_fields,
    state_table,
)
from strangler.analytics.swap import partition_id, staging_suffix
from strangler.spec import EstateSpec, current_spec, load_spec
from strangler.spec.types import PG_TYPES
from tests.schemas.shop import SPEC as SHOP_SPEC

SAMPLE_TABLES = (
    "events",
    "customer_state",
    "document_state",
    "ocr_page_state",
    "processing_job_state",
    "document_processing",
    "event_counts_daily",
    "processing_latency_daily",
    "documents_status_daily",
)


def test_sample_schema_generic_events_state_per_aggregate_then_the_analytics_folder() -> None:
    schema = default_schema()
    assert [m.version for m in schema.migrations] == [1]
    assert schema.loaded_tables == ("events",)
    assert schema.swapped_tables == SAMPLE_TABLES
    assert {v.view for v in schema.views} == {
        "event_counts_daily_mv",
        "processing_latency_daily_mv",
        "documents_status_daily_mv",
    }
    assert all(v.source == "events" for v in schema.views)
    assert [d.target for d in schema.derived][-1] == "document_processing"
    assert set(schema.versioned) == set(SAMPLE_TABLES) - {"events"}


def test_shop_schema_has_no_sample_tables() -> None:
    schema = build_schema(load_spec(SHOP_SPEC))
    assert schema.swapped_tables == (
        "events",
        "country_state",
        "account_state",
        "order_state",
        "order_line_state",
    )
    assert not schema.views


def test_the_generic_files_name_no_aggregate() -> None:
    text = "\n".join(schema_sql(DdlOptions(), load_schema()))
    for name in ("customer", "document", "ocr", "processing", "Order", "account"):
        assert name not in text


def test_single_node_rendering() -> None:
    sql = schema_sql(DdlOptions(database="analytics"))
    text = "\n".join(sql)
    assert sql[0] == "CREATE DATABASE IF NOT EXISTS `analytics`"
    assert "ON CLUSTER" not in text
    assert "Replicated" not in text
    assert "{{" not in text
    assert "CREATE TABLE IF NOT EXISTS `analytics`.`events`\n(" in text
    assert "ENGINE = MergeTree\nPARTITION BY partition_key" in text
    assert "ENGINE = ReplacingMergeTree(_version, _is_deleted)\nPARTITION BY partition_key" in text
    assert "ENGINE = AggregatingMergeTree" in text
    assert "TO `analytics`.`event_counts_daily`" in text
    assert "--" not in text


def test_cluster_rendering() -> None:
    sql = schema_sql(DdlOptions(database="an_1", cluster="prod"))
    assert sql[0] == "CREATE DATABASE IF NOT EXISTS `an_1` ON CLUSTER `prod`"
    creates = [s for s in sql if s.startswith("CREATE")]
    assert all(" ON CLUSTER `prod`" in s for s in creates)
    engines = [s for s in sql if "ENGINE" in s]
    assert engines and all("ENGINE = Replicated" in s for s in engines)
    assert any(
        "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}',"
        " '{replica}', _version, _is_deleted)" in s
        for s in sql
    )


def test_every_postgres_type_of_the_event_mapping_has_a_clickhouse_type() -> None:
    assert set(PG_TYPES) <= set(PG_TO_CLICKHOUSE)
    assert base_type("int8") == "Int64"
    assert base_type("_int4") == "Array(Nullable(Int32))"
    assert base_type("_jsonb") == "JSON_TEXT"
    assert base_type("geometry") == "JSON_TEXT"
    assert base_type(None) == "JSON_TEXT"
    assert base_type("numeric", "decimal") == "Decimal(38, 10)"
    assert base_type("text", "json") == "JSON_TEXT"
    assert column_type("JSON_TEXT") == "Nullable(String)"
    assert column_type("Array(Nullable(Int32))") == "Array(Nullable(Int32))"
    assert column_type("LowCardinality(String)") == "LowCardinality(Nullable(String))"
    assert column_type("Decimal(12, 2)") == "Nullable(Decimal(12, 2))"


def test_state_fields_follow_the_events_and_the_overrides() -> None:
    spec = EstateSpec.model_validate(
        {
            "version": 1,
            "estate": {"name": "t", "first_partition": "2026-01-01"},
            "aggregates": [
                {
                    "name": "LineItem",
                    "source": {"table": "line_items", "primary_key": ["id"]},
                    "partitioning": {"time_column": "at"},
                    "topic": "items",
                    "events": {
                        "named": [
                            {
                                "type": "ItemPriced",
                                "when": "price > 0",
                                "at": "at",
                                "fields": {"id": "id", "price": "price", "x": {"sql": "1"}},
                            }
                        ]
                    },
                    "columns": {"price": {"clickhouse": "Decimal(12, 2)"}},
                }
            ],
        }
    )
    (aggregate,) = spec.aggregates
    assert state_table(aggregate) == "line_item_state"
    types = {"id": "int8", "price": "numeric", "at": "timestamptz", "note": "text"}
    assert state_fields(aggregate, types) == {
        "id": "Int64",
        "price": "Decimal(12, 2)",
        "at": "DateTime64(6, 'UTC')",
        "note": "String",
        "x": "JSON_TEXT",
    }
    assert state_fields(aggregate, {}) == {
        "id": "JSON_TEXT",
        "price": "Decimal(12, 2)",
        "x": "JSON_TEXT",
    }


def test_extraction_converts_every_mapped_type() -> None:
    from chdb import session

    s = session.Session()
    cases = {
        "Int64": ('{"a": 12}', "12"),
        "Decimal(38, 10)": ('{"a": "12.50"}', "12.5"),
        "DateTime64(6, 'UTC')": (
            '{"a": "2026-05-04T10:00:00.25+02:00"}',
            "2026-05-04 08:00:00.250000",
        ),
        "Bool": ('{"a": true}', "true"),
        "UUID": (
            '{"a": "6f1c1a52-5d0e-4c1e-9a55-0c8f6a1b2c3d"}',
            "6f1c1a52-5d0e-4c1e-9a55-0c8f6a1b2c3d",
        ),
        "Date32": ('{"a": "2026-05-04"}', "2026-05-04"),
        "String": ('{"a": "x"}', "x"),
        "JSON_TEXT": ('{"a": {"k": [1, 2]}}', '{"k":[1,2]}'),
        "Array(Nullable(Int32))": ('{"a": [1, null]}', "[1,NULL]"),
        "Float32": ('{"a": 0.5}', "0.5"),
    }
    for base, (payload, expected) in cases.items():
        got = s.query(
            f"SELECT {extract_sql('a', base)} FROM (SELECT '{payload}' AS payload)", "TSV"
        )
        assert str(got).strip() == expected, base
    for base in ("Int64", "String", "JSON_TEXT", "DateTime64(6, 'UTC')"):
        for payload in ('{"a": null}', '{"b": 1}'):
            got = s.query(
                f"SELECT {extract_sql('a', base)} FROM (SELECT '{payload}' AS payload)", "TSV"
            )
            assert str(got).strip() == "\\N", (base, payload)


def test_partition_ids_are_the_engines() -> None:
    from chdb import session

    s = session.Session()
    for key in ("2026-01-01", "reference", "2024-05-06"):
        engine = str(s.query(f"SELECT partitionId('{key}')", "TSV")).strip()
        assert partition_id(key) == engine
    assert partition_id(date(2026, 1, 1)) == partition_id("2026-01-01")
    assert staging_suffix("2026-01-02") == "20260102"
    assert staging_suffix("reference") == "reference"
    with pytest.raises(ValueError):
        partition_id("2024-05-01')--")


def test_a_user_folder_with_an_alter_or_a_missing_target_is_refused(tmp_path: Path) -> None:
    spec = current_spec().model_copy(
        update={"analytics": current_spec().analytics.model_copy(update={"sql": str(tmp_path)})}
    )
    (tmp_path / "t.sql").write_text("ALTER TABLE {{db}}.`events` ADD COLUMN x UInt8;\n")
    with pytest.raises(DdlError, match="ALTER"):
        build_schema(spec)
    (tmp_path / "t.sql").write_text("SELECT 1;\n")
    with pytest.raises(DdlError, match="unsupported"):
        build_schema(spec)
    (tmp_path / "t.sql").unlink()
    (tmp_path / "derived").mkdir()
    (tmp_path / "derived" / "nope.sql").write_text("SELECT * FROM {{db}}.`events`\n")
    with pytest.raises(DdlError, match="no table nope"):
        build_schema(spec)


def test_the_ddl_checksum_changes_with_the_types() -> None:
    spec = load_spec(SHOP_SPEC)
    untyped = build_schema(spec)
    typed = build_schema(spec, {"shop.accounts": {"id": "int8", "email": "text"}})
    assert untyped.versioned["account_state"] != typed.versioned["account_state"]
    assert untyped.versioned["order_state"] == typed.versioned["order_state"]


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


def test_spec_show_ddl_prints_the_generated_and_versioned_ddl() -> None:
    from typer.testing import CliRunner

    from strangler.analytics.estate_ddl import ddl_text
    from strangler.cli import app

    text = ddl_text(load_spec(SHOP_SPEC), DdlOptions(database="an"), None)
    assert "-- version account_state: " in text
    assert "CREATE TABLE IF NOT EXISTS `an`.`account_state`" in text
    assert "none recorded yet" in text
    unreachable = ddl_text(
        load_spec(SHOP_SPEC), DdlOptions(), "postgresql://nobody@127.0.0.1:1/none"
    )
    assert "not readable" in unreachable and "`order_line_state`" in unreachable
    result = CliRunner().invoke(app, ["spec", "show", "--ddl", str(SHOP_SPEC)])
    assert result.exit_code == 0, result.output
    assert "ReplacingMergeTree(_version, _is_deleted)" in result.output
    assert "`customer_state`" not in result.output
