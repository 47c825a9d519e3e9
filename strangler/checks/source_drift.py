"""`schema_unchanged` on every monolith source asset: has the table drifted from the baseline?

The monolith keeps changing while the migration runs for months. The check compares the
table's live columns (read-only role, `pg_catalog`) with the baseline the first migration
recorded in the estate (`migration_state.source_columns`): an added column warns, a dropped
or retyped one fails with severity ERROR, and each finding names the spec change to make.
Not partitioned: a table's columns are the same for every day.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from strangler.assets.monolith import monolith_key
from strangler.migration import drift
from strangler.resources.postgres import PostgresResource
from strangler.spec import EstateSpec, current_spec
from strangler.spec.models import Aggregate

CHECK_NAME = "schema_unchanged"


def drift_result(
    aggregate: Aggregate, recorded: dict[str, str], live: drift.LiveColumns
) -> dg.AssetCheckResult:
    """The check's result for one table, from its baseline and its live columns."""
    table = drift.baseline_table(aggregate)
    meta: dict[str, Any] = {"table": table, "live_columns": len(live.types)}
    if not recorded:
        return dg.AssetCheckResult(
            passed=True,
            metadata={**meta, "baseline": drift.NO_BASELINE},
            description=drift.NO_BASELINE,
        )
    found = drift.compare(aggregate, recorded, live.types, enums=live.enums)
    meta |= {
        "baseline_columns": len(recorded),
        "added": len(found.added),
        "dropped": len(found.dropped),
        "retyped": len(found.retyped),
        "findings": dg.MetadataValue.md(
            "\n".join(f"- {f.kind}: {f.message}" for f in found.findings) or "none"
        ),
    }
    if found.clean:
        return dg.AssetCheckResult(passed=True, metadata=meta)
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR if found.blocking else dg.AssetCheckSeverity.WARN,
        metadata=meta,
        description=found.text(),
    )


def _check(aggregate: Aggregate) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=monolith_key(aggregate.source.table),
        name=CHECK_NAME,
        description=(
            f"`{aggregate.source.qualified}` has the columns the migration recorded: an added"
            " column warns (not migrated yet, or carried from now on), a dropped or retyped one"
            " fails (events would be wrong); each finding names the spec change to make."
        ),
        blocking=False,
    )
    def schema_unchanged(
        monolith: PostgresResource, postgres: PostgresResource
    ) -> dg.AssetCheckResult:
        with monolith.connection() as conn:
            live = drift.read_live(conn, aggregate)
            conn.rollback()
        with postgres.connection() as conn:
            recorded = drift.recorded_columns(conn, drift.baseline_table(aggregate))
            conn.rollback()
        return drift_result(aggregate, recorded, live)

    return schema_unchanged


def build_source_drift_checks(spec: EstateSpec) -> list[dg.AssetChecksDefinition]:
    """One `schema_unchanged` check per monolith source asset of the spec."""
    return [_check(aggregate) for aggregate in spec.aggregates]


source_drift_checks = build_source_drift_checks(current_spec())
