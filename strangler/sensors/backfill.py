"""Sensors that re-run days: late data (one backfill) and failed blocking checks (retry, then
file a rollback request).

Late data: a migrated monolith day whose version (per table of the spec: row count,
max(updated_at), row checksum) differs from the version its last completed event-store
migration read changed after it was migrated: edited, added to, or deleted from. All such
days are requested as ONE backfill over the whole daily asset graph, through the private
`RunRequest.for_asset_graph_subset` (no public API exists; tests pin its behaviour). The
cursor keeps the version requested per day, so a day is requested again only if it changes
again.

Failed checks: each new failing blocking (or ERROR) check evaluation of day D re-materializes
the checked asset and everything downstream for D, at most N times; after that a
`rollback_requests` row is filed for D and D is not retried again. A passing evaluation resets
the count. Every decision is logged on the tick.
"""

import json
from collections.abc import Callable
from typing import Any

import dagster as dg
import psycopg
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.definitions.events import AssetKeyPartitionKey
from dagster._core.event_api import EventRecordsFilter
from dagster._core.events import DagsterEventType

from strangler.checks.partition_live import LIVE_CHECK, partition_liveness
from strangler.migration import source
from strangler.migration.partition_run import MIGRATION
from strangler.migration.source import REFERENCE
from strangler.partitions import daily_partitions
from strangler.resources.postgres import PostgresResource
from strangler.settings import get_settings
from strangler.spec import EstateSpec, current_spec

_SETTINGS = get_settings()
BACKFILL_TAG = "strangler/backfill_reason"


def partition_versions(conn: psycopg.Connection[Any], spec: EstateSpec) -> dict[str, str]:
    """Per partition key: the monolith's version now, over every table of the spec."""
    marks: dict[str, dict[str, source.DayMark]] = {}
    for aggregate in spec.aggregates:
        for key, mark in source.day_marks(conn, spec, aggregate).items():
            marks.setdefault(key, {})[aggregate.source.table] = mark
    return {key: source.partition_version(by_table) for key, by_table in marks.items()}


def migrated_versions(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """Per partition key: the monolith's version its last completed migration read."""
    rows = conn.execute(
        "SELECT partition_key, position ->> 'source_version'"
        " FROM migration_state.migration_checkpoints"
        " WHERE migration = %s AND position ->> 'status' = 'completed'",
        (MIGRATION,),
    ).fetchall()
    return {str(k): str(v or "") for k, v in rows}


def changed_partitions(
    current: dict[str, str], migrated: dict[str, str], requested: dict[str, str]
) -> list[str]:
    """Migrated partitions (days or `reference`) whose rows changed (edited, added or deleted)
    and were not requested yet at that version.

    A partition whose rows were all deleted has no current version, which differs too.
    """
    return sorted(
        key
        for key, version in migrated.items()
        if current.get(key, "") != version and requested.get(key) != current.get(key, "")
    )


def daily_asset_keys(asset_graph: Any) -> list[dg.AssetKey]:
    return sorted(
        (k for k in asset_graph.materializable_asset_keys if asset_graph.get(k).is_partitioned),
        key=lambda k: k.to_user_string(),
    )


def backfill_request(asset_graph: Any, days: list[str], reason: str) -> dg.RunRequest:
    """ONE backfill of `days` for every daily asset (shown on the UI's backfills page)."""
    keys = daily_asset_keys(asset_graph)
    subset = AssetGraphSubset.from_asset_partition_set(
        {AssetKeyPartitionKey(k, d) for k in keys for d in days}, asset_graph
    )
    return dg.RunRequest.for_asset_graph_subset(subset, tags={BACKFILL_TAG: reason})


def reference_request(asset_graph: Any, version: str) -> dg.RunRequest | None:
    """A run of the unpartitioned reference assets (reference data changed), or None."""
    root = dg.AssetKey(["event_store", "reference"])
    if not asset_graph.has(root):
        return None
    downstream = dg.AssetSelection.assets(root).downstream().resolve(asset_graph)
    keys = [
        k
        for k in sorted(downstream, key=lambda k: k.to_user_string())
        if asset_graph.get(k).is_materializable and not asset_graph.get(k).is_partitioned
    ]
    return dg.RunRequest(
        run_key=f"reference:{version}",
        asset_selection=keys,
        tags={BACKFILL_TAG: "late_data"},
    )


def build_late_data_sensor(spec: EstateSpec) -> dg.SensorDefinition:
    """The late-data sensor over the spec's tables: changed days -> one backfill; changed
    reference data -> one run of the reference assets."""

    @dg.sensor(
        name="late_data_backfill_sensor",
        asset_selection=dg.AssetSelection.all(),
        minimum_interval_seconds=_SETTINGS.backfill_sensor_interval_s,
        description="Backfill partitions whose monolith rows changed after they were migrated.",
    )
    def late_data_backfill_sensor(
        context: dg.SensorEvaluationContext,
        postgres: PostgresResource,
        monolith: PostgresResource,
    ) -> dg.SensorResult | dg.SkipReason:
        requested: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        with monolith.connection() as conn:
            current = partition_versions(conn, spec)
            conn.rollback()
        with postgres.connection() as conn:
            migrated = migrated_versions(conn)
            conn.rollback()
        changed = changed_partitions(current, migrated, requested)
        valid = set(daily_partitions.get_partition_keys())
        days = [key for key in changed if key in valid]
        reference = REFERENCE in changed
        if not days and not reference:
            return dg.SkipReason(f"no late data in {len(migrated)} migrated partitions")
        for key in [*days, *([REFERENCE] if reference else [])]:
            context.log.info(
                f"late data in {key}: the monolith now reads {current.get(key) or 'no rows'!r},"
                f" the last migration read {migrated[key]!r}; backfilling"
            )
        repo = context.repository_def
        assert repo is not None, (
            "the sensor needs its definitions (build_sensor_context(definitions=...))"
        )
        requests = [backfill_request(repo.asset_graph, days, "late_data")] if days else []
        if reference:
            version = current.get(REFERENCE, "")
            request = reference_request(repo.asset_graph, version)
            requests += [request] if request is not None else []
            requested[REFERENCE] = version
        requested.update({d: current.get(d, "") for d in days})
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(requested, sort_keys=True))

    return late_data_backfill_sensor


# ---- failed checks ---------------------------------------------------------------------

FileRequest = Callable[[psycopg.Connection[Any], str, str, str], None]


def file_rollback_request(
    conn: psycopg.Connection[Any], asset_key: str, day: str, reason: str
) -> None:
    conn.execute(
        "INSERT INTO migration_state.rollback_requests"
        " (asset_key, partition_keys, reason, requested_by, services) VALUES (%s, %s, %s, %s, %s)",
        (asset_key, [day], reason, "sensor:failed_check_retry_sensor", ["all"]),
    )


def _evaluations(instance: dg.DagsterInstance, after: int | None) -> list[tuple[int, Any]]:
    records = instance.get_event_records(
        EventRecordsFilter(DagsterEventType.ASSET_CHECK_EVALUATION, after_cursor=after),
        ascending=True,
        limit=1_000,
    )
    out = []
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is not None:
            out.append((record.storage_id, event.event_specific_data))
    return out


def _is_blocking_failure(evaluation: Any) -> bool:
    return not evaluation.passed and (
        bool(evaluation.blocking) or evaluation.severity == dg.AssetCheckSeverity.ERROR
    )


def rolled_back_by(instance: dg.DagsterInstance, asset_keys: set[str], day: str) -> str | None:
    """The rollback that emptied `day` of one of these assets and still stands, if any."""
    for key in sorted(asset_keys):
        state = partition_liveness(instance, dg.AssetKey.from_user_string(key), day)
        if not state.passed:
            return state.rollback_id or "unknown"
    return None


def build_failed_check_sensor(
    max_retries: int = _SETTINGS.rollback_max_check_retries,
    file_request: FileRequest = file_rollback_request,
    name: str = "failed_check_retry_sensor",
) -> dg.SensorDefinition:
    @dg.sensor(
        name=name,
        minimum_interval_seconds=60,
        asset_selection=dg.AssetSelection.all(),
        description=(
            f"Re-materialize a day after a failing blocking check, at most {max_retries} times;"
            " then file a rollback request for it."
        ),
    )
    def failed_check_sensor(
        context: dg.SensorEvaluationContext, postgres: PostgresResource
    ) -> dg.SensorResult | dg.SkipReason:
        state: dict[str, Any] = (
            json.loads(context.cursor)
            if context.cursor
            else {"after": None, "tries": {}, "filed": []}
        )
        tries: dict[str, int] = state["tries"]
        filed: list[str] = state["filed"]
        evaluations = _evaluations(context.instance, state["after"])
        if not evaluations:
            return dg.SkipReason("no new check evaluations")
        failing: dict[str, dict[str, str]] = {}
        for storage_id, ev in evaluations:
            state["after"] = storage_id
            day = getattr(ev, "partition", None)
            if day is None:
                continue
            check = f"{ev.asset_key.to_user_string()}:{ev.check_name}"
            if ev.passed:
                if tries.pop(day, None) is not None:
                    context.log.info(f"{check} passed for {day}: retry count reset")
                failing.get(day, {}).pop(check, None)
            elif ev.check_name == LIVE_CHECK:
                continue
            elif _is_blocking_failure(ev):
                failing.setdefault(day, {})[check] = ev.asset_key.to_user_string()
        repo = context.repository_def
        graph = repo.asset_graph if repo is not None else None
        requests: list[dg.RunRequest] = []
        with postgres.connection() as conn:
            for day, checks in sorted(failing.items()):
                if not checks:
                    continue
                names = ", ".join(sorted(checks))
                if day in filed:
                    context.log.info(
                        f"{day}: {names} failing; rollback already requested, no retry"
                    )
                    continue
                rolled_back = rolled_back_by(context.instance, set(checks.values()), day)
                if rolled_back:
                    context.log.info(
                        f"{day}: {names} failing because rollback {rolled_back} emptied it on"
                        " purpose; not retrying (re-materialize or undo the rollback to bring it"
                        " back)"
                    )
                    continue
                done = tries.get(day, 0)
                if done >= max_retries:
                    file_request(
                        conn,
                        sorted(set(checks.values()))[0],
                        day,
                        f"blocking checks {names} still failing after {done} re-materializations",
                    )
                    filed.append(day)
                    tries.pop(day, None)
                    context.log.warning(
                        f"{day}: {names} failing after {done} retries; rollback request filed"
                    )
                    continue
                tries[day] = done + 1
                roots = [dg.AssetKey.from_user_string(k) for k in set(checks.values())]
                selection = dg.AssetSelection.assets(*roots).downstream()
                keys = sorted(
                    selection.resolve(graph) if graph is not None else roots,
                    key=lambda k: k.to_user_string(),
                )
                context.log.info(
                    f"{day}: {names} failing; re-materialization {done + 1}/{max_retries} of"
                    f" {', '.join(k.to_user_string() for k in keys)}"
                )
                requests.append(
                    dg.RunRequest(
                        run_key=f"check-retry:{day}:{done + 1}:{state['after']}",
                        partition_key=day,
                        asset_selection=keys,
                        tags={BACKFILL_TAG: "failed_check", "strangler/retry": str(done + 1)},
                    )
                )
            conn.commit()
        state["filed"] = sorted(filed)[-500:]
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(state, sort_keys=True))

    return failed_check_sensor


failed_check_retry_sensor = build_failed_check_sensor()


def build_backfill_sensors(spec: EstateSpec) -> list[dg.SensorDefinition]:
    """The late-data sensor over the spec's tables and the failed-check retry sensor."""
    return [build_late_data_sensor(spec), build_failed_check_sensor()]


def __getattr__(name: str) -> Any:
    """The settings' spec's sensors, built on first use: `backfill_sensors`,
    `late_data_backfill_sensor`."""
    if name == "backfill_sensors":
        return build_backfill_sensors(current_spec())
    if name == "late_data_backfill_sensor":
        return build_late_data_sensor(current_spec())
    raise AttributeError(name)
