"""The analytics DDL of an estate, typed from what the event store knows of the monolith.

Current-state columns take their types from the drift baseline the migration records
(`migration_state.source_columns`: the source columns and their Postgres types when first
seen). Before a first migration there is no baseline; the DDL then carries untyped (String)
fields, and the first load after the baseline exists rebuilds the changed tables (their DDL
checksum changed).
"""

from __future__ import annotations

from typing import Any

import psycopg

from strangler.analytics.ddl import DdlOptions, Schema, build_schema, schema_sql
from strangler.migration import drift
from strangler.spec.models import EstateSpec


def column_types(conn: psycopg.Connection[Any], spec: EstateSpec) -> dict[str, dict[str, str]]:
    """`schema.table` -> column -> Postgres type, from the event store's drift baseline."""
    return {
        a.source.qualified: drift.recorded_columns(conn, drift.baseline_table(a))
        for a in spec.aggregates
    }


def estate_schema(conn: psycopg.Connection[Any], spec: EstateSpec) -> Schema:
    """The analytics schema of the estate, current-state columns typed by the baseline."""
    return build_schema(spec, column_types(conn, spec))


def ddl_text(spec: EstateSpec, options: DdlOptions, conninfo: str | None = None) -> str:
    """Every statement of the estate's analytics schema, with each versioned target's
    checksum (what `strangler spec show --ddl` prints)."""
    note = "-- current-state types: none recorded yet (fields are String until a migration runs)"
    types: dict[str, dict[str, str]] = {}
    if conninfo:
        try:
            with psycopg.connect(conninfo, connect_timeout=5) as conn:
                types = column_types(conn, spec)
            if any(types.values()):
                note = "-- current-state types: from the estate's migration_state.source_columns"
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            note = f"-- current-state types: estate database not readable ({first}); String"
    schema = build_schema(spec, types)
    lines = [f"-- ClickHouse DDL of estate {spec.estate.name} (database {options.database})", note]
    lines += [f"-- version {t}: {c[:16]}" for t, c in schema.versioned.items()]
    return "\n".join(lines) + "\n\n" + ";\n\n".join(schema_sql(options, schema)) + ";\n"
