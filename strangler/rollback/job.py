"""The `rollback` job: plan -> snapshot -> execute -> validate -> report, visible in the UI.

The ops are thin: each calls one step of the plain library. The report is the run's metadata;
every rolled-back partition gets an AssetObservation carrying the rollback id, a failed `live`
check, and reads Failed in the partitions view (see `partition_status`): open-source Dagster
cannot wipe partition history, so the rollback is recorded forward, and the next
materialization of the partition (or an undo) supersedes it.
"""

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
from pydantic import Field

from strangler.analytics.ddl import DdlOptions
from strangler.checks.partition_live import ROLLBACK_ID, ROLLED_BACK, live_evaluation
from strangler.resources.clickhouse import ClickHouseResource
from strangler.resources.kafka import KafkaResource
from strangler.resources.postgres import PostgresResource
from strangler.resources.weaviate import WeaviateResource
from strangler.rollback.asset_keys import asset_keys_for
from strangler.rollback.code_versions import days_written_after
from strangler.rollback.execute import ExecuteResult, execute
from strangler.rollback.liveness import RollbackMark, liveness
from strangler.rollback.partition_status import (
    ROLLBACK_TAG,
    restored_materializations,
    retract_partitions,
)
from strangler.rollback.plan import Plan, build_plan
from strangler.rollback.report import Report, create_request, save_report, set_request_status
from strangler.rollback.scope import scope_of
from strangler.rollback.services import ANALYTICS, SEARCH
from strangler.rollback.snapshot import SnapshotResult, snapshot_dir, take_snapshot
from strangler.rollback.targets import Targets
from strangler.rollback.undo import undo
from strangler.rollback.validate import Validation, validate
from strangler.search.schema import CollectionNames
from strangler.settings import get_settings
from strangler.spec import EstateSpec, current_spec

JOB_NAME = "rollback"
UNDO_JOB_NAME = "rollback_undo"


class RollbackConfig(dg.Config):
    services: list[str] = Field(
        default=["all"], description="service_health names, aliases, or all"
    )
    from_day: str | None = Field(default=None, description="First day (YYYY-MM-DD).")
    to_day: str | None = Field(default=None, description="Last day, inclusive.")
    after: str | None = Field(default=None, description="Everything migrated after this time.")
    code_version: str | None = Field(default=None, description="Undo what newer versions wrote.")
    dry_run: bool = Field(default=False, description="Plan only; change nothing.")
    request_id: str | None = Field(default=None, description="rollback_requests row to serve.")
    reason: str = "requested from Dagster"
    clickhouse_database: str | None = None
    collection_prefix: str | None = None
    analytics_group: str | None = None
    search_group: str | None = None
    snapshot_dir: str | None = None


@dataclass
class Planned:
    request_id: str
    dry_run: bool
    plan: Plan
    overrides: dict[str, str | None]


def build_targets(
    postgres: PostgresResource,
    kafka: KafkaResource,
    clickhouse: ClickHouseResource,
    weaviate: WeaviateResource,
    overrides: dict[str, str | None] | None = None,
    spec: EstateSpec | None = None,
) -> Targets:
    """Targets from the resources and settings, with optional per-run overrides (tests)."""
    o = overrides or {}
    settings = get_settings()
    groups = {ANALYTICS: "analytics-service", SEARCH: "search-service"}
    if o.get("analytics_group"):
        groups[ANALYTICS] = str(o["analytics_group"])
    if o.get("search_group"):
        groups[SEARCH] = str(o["search_group"])
    folder = o.get("snapshot_dir") or settings.rollback_snapshot_dir or settings.home / "rollbacks"
    return Targets(
        postgres_conninfo=postgres.conninfo(),
        kafka=kafka,
        clickhouse=clickhouse.client,
        weaviate=weaviate.client,
        ddl=DdlOptions(database=o.get("clickhouse_database") or settings.clickhouse_database),
        names=CollectionNames(
            str(o["collection_prefix"])
            if o.get("collection_prefix") is not None
            else settings.weaviate_collection_prefix
        ),
        consumer_groups=groups,
        snapshot_dir=Path(str(folder)),
        spec=spec or current_spec(),
        monolith_conninfo=settings.monolith_conninfo(),
    )


_TARGET_KEYS = (
    "clickhouse_database",
    "collection_prefix",
    "analytics_group",
    "search_group",
    "snapshot_dir",
)


def step_durations(context: dg.OpExecutionContext) -> dict[str, float]:
    """How long each finished step of this run took, from Dagster's own step records."""
    out: dict[str, float] = {}
    for stats in context.instance.get_run_step_stats(context.run_id):
        if stats.start_time is not None and stats.end_time is not None:
            out[stats.step_key.removeprefix("rollback_")] = round(
                stats.end_time - stats.start_time, 3
            )
    return out


def mark_partitions(
    context: dg.OpExecutionContext,
    spec: EstateSpec,
    services: tuple[str, ...],
    days: list[str],
    request_id: str,
    *,
    restored: bool = False,
) -> None:
    """Record the rollback (or its undo) on every partition it touched, and its `live` check."""
    state = liveness(None, RollbackMark(time.time(), not restored, request_id))
    for key in asset_keys_for(services, spec):
        for day in days:
            context.log_event(
                dg.AssetObservation(
                    asset_key=key,
                    partition=day,
                    metadata={
                        ROLLED_BACK: not restored,
                        ROLLBACK_ID: request_id,
                        "dagster/run_id": context.run_id,
                    },
                    tags={ROLLBACK_TAG: request_id},
                )
            )
            context.log_event(live_evaluation(key, day, state))  # type: ignore[arg-type]


class UndoConfig(dg.Config):
    ref: str = Field(description="Request id (uuid) or rollback_reports report id to undo.")
    clickhouse_database: str | None = None
    collection_prefix: str | None = None
    analytics_group: str | None = None
    search_group: str | None = None
    snapshot_dir: str | None = None


def build_rollback_jobs(spec: EstateSpec) -> list[dg.JobDefinition]:
    """The rollback and undo jobs over the spec's stores (its topics, collections, assets)."""

    @dg.op(out=dg.Out(Planned))
    def rollback_plan(
        context: dg.OpExecutionContext,
        config: RollbackConfig,
        postgres: PostgresResource,
        kafka: KafkaResource,
        clickhouse: ClickHouseResource,
        weaviate: WeaviateResource,
    ) -> Planned:
        """What will be removed, per service and day; a dry run stops after this step."""
        scope = scope_of(
            config.services,
            from_day=config.from_day,
            to_day=config.to_day,
            after=datetime.fromisoformat(config.after) if config.after else None,
            code_version=config.code_version,
        )
        overrides = {k: getattr(config, k) for k in _TARGET_KEYS}
        targets = build_targets(postgres, kafka, clickhouse, weaviate, overrides, spec)
        started = time.monotonic()
        code_version_days = (
            days_written_after(
                context.instance, asset_keys_for(scope.services, spec), config.code_version
            )
            if config.code_version
            else None
        )
        plan = build_plan(
            targets, scope, dry_run=config.dry_run, code_version_days=code_version_days
        )
        with psycopg.connect(targets.postgres_conninfo) as conn:
            request_id = config.request_id or create_request(
                conn,
                scope,
                plan.days,
                reason=config.reason,
                requested_by=f"dagster:{context.run_id}",
                dry_run=config.dry_run,
                status="running",
            )
            set_request_status(conn, request_id, "running", context.run_id)
            conn.commit()
        context.log.info(f"rollback {request_id}: {plan.markdown()}")
        context.add_output_metadata(
            {
                "request_id": request_id,
                "days": ", ".join(plan.days),
                "items": plan.total,
                "plan": dg.MetadataValue.md(plan.markdown()),
                "plan_seconds": round(time.monotonic() - started, 3),
            }
        )
        return Planned(request_id, config.dry_run, plan, overrides)

    @dg.op
    def rollback_snapshot(
        context: dg.OpExecutionContext,
        planned: Planned,
        postgres: PostgresResource,
        kafka: KafkaResource,
        clickhouse: ClickHouseResource,
        weaviate: WeaviateResource,
    ) -> SnapshotResult | None:
        """Copy everything the rollback removes (so it can be undone)."""
        if planned.dry_run:
            context.log.info("dry run: no snapshot")
            return None
        targets = build_targets(postgres, kafka, clickhouse, weaviate, planned.overrides, spec)
        result = take_snapshot(targets, planned.request_id, planned.plan)
        context.add_output_metadata({"snapshot": dg.MetadataValue.json(result.items)})
        return result

    @dg.op
    def rollback_execute(
        context: dg.OpExecutionContext,
        planned: Planned,
        snapshot: SnapshotResult | None,
        postgres: PostgresResource,
        kafka: KafkaResource,
        clickhouse: ClickHouseResource,
        weaviate: WeaviateResource,
    ) -> ExecuteResult | None:
        """Downstream first: Weaviate, ClickHouse, consumer groups, relay, event store."""
        if planned.dry_run:
            return None
        targets = build_targets(postgres, kafka, clickhouse, weaviate, planned.overrides, spec)
        try:
            result = execute(targets, planned.plan)
        except Exception as exc:
            with psycopg.connect(targets.postgres_conninfo) as conn:
                report = Report(
                    planned.request_id,
                    False,
                    planned.plan,
                    snapshot,
                    error=f"{type(exc).__name__}: {exc}",
                )
                save_report(conn, report, snapshot_dir(targets, planned.request_id))
                conn.commit()
            raise
        context.add_output_metadata({"removed": dg.MetadataValue.json(result.removed)})
        return result

    @dg.op
    def rollback_validate(
        planned: Planned,
        executed: ExecuteResult | None,
        postgres: PostgresResource,
        kafka: KafkaResource,
        clickhouse: ClickHouseResource,
        weaviate: WeaviateResource,
    ) -> Validation | None:
        """Services reachable; the days empty; their neighbours unchanged."""
        if executed is None:
            return None
        targets = build_targets(postgres, kafka, clickhouse, weaviate, planned.overrides, spec)
        return validate(targets, planned.plan)

    @dg.op
    def rollback_report(
        context: dg.OpExecutionContext,
        planned: Planned,
        snapshot: SnapshotResult | None,
        executed: ExecuteResult | None,
        validation: Validation | None,
        postgres: PostgresResource,
        kafka: KafkaResource,
        clickhouse: ClickHouseResource,
        weaviate: WeaviateResource,
    ) -> Any:
        """rollback_reports rows + Markdown/JSON as metadata; observations on the partitions."""
        targets = build_targets(postgres, kafka, clickhouse, weaviate, planned.overrides, spec)
        report = Report(
            planned.request_id, planned.dry_run, planned.plan, snapshot, executed, validation
        )
        report.durations_s = step_durations(context)
        with psycopg.connect(targets.postgres_conninfo) as conn:
            save_report(conn, report, snapshot_dir(targets, planned.request_id))
            conn.commit()
        retractions: list[str] = []
        if not planned.dry_run and executed is not None:
            services = planned.plan.scope.services
            mark_partitions(context, spec, services, planned.plan.days, planned.request_id)
            retractions = retract_partitions(
                context.instance,
                asset_keys_for(services, spec),
                planned.plan.days,
                planned.request_id,
                context.run_id,
            )
        context.add_output_metadata(
            {
                "retraction_runs": dg.MetadataValue.json(retractions),
                "status": report.status,
                "report": dg.MetadataValue.md(report.markdown()),
                "report_json": dg.MetadataValue.json(report.to_dict()),
            }
        )
        result = {**report.to_dict(), "markdown": report.markdown()}
        if report.status != "succeeded":
            raise dg.Failure(
                f"rollback {planned.request_id} failed validation",
                metadata={"report": dg.MetadataValue.md(report.markdown())},
            )
        return result

    @dg.job(name=JOB_NAME, tags={"strangler/kind": "rollback"}, description=__doc__)
    def rollback_job() -> None:
        planned = rollback_plan()
        snapshot = rollback_snapshot(planned)
        executed = rollback_execute(planned, snapshot)
        validation = rollback_validate(planned, executed)
        rollback_report(planned, snapshot, executed, validation)

    @dg.op
    def rollback_undo_op(
        context: dg.OpExecutionContext,
        config: UndoConfig,
        postgres: PostgresResource,
        kafka: KafkaResource,
        clickhouse: ClickHouseResource,
        weaviate: WeaviateResource,
    ) -> dict[str, Any]:
        """Restore a rollback's snapshot; the partitions get an observation saying so."""
        overrides = {k: getattr(config, k) for k in _TARGET_KEYS}
        targets = build_targets(postgres, kafka, clickhouse, weaviate, overrides, spec)
        result = undo(targets, config.ref)
        mark_partitions(
            context, spec, result.services, result.days, result.request_id, restored=True
        )
        keys = asset_keys_for(result.services, spec)
        for materialization in restored_materializations(
            context.instance, keys, result.days, result.request_id
        ):
            context.log_event(materialization)
        summary = {
            "request_id": result.request_id,
            "days": result.days,
            "restored": result.restored,
        }
        context.add_output_metadata({"undo": dg.MetadataValue.json(summary)})
        return summary

    @dg.job(name=UNDO_JOB_NAME, tags={"strangler/kind": "rollback-undo"})
    def rollback_undo_job() -> None:
        """Undo a rollback from its pre-rollback snapshot."""
        rollback_undo_op()

    return [rollback_job, rollback_undo_job]


_BUILT: dict[int, tuple[EstateSpec, list[dg.JobDefinition]]] = {}


def jobs_for(spec: EstateSpec) -> list[dg.JobDefinition]:
    """`build_rollback_jobs(spec)`, once per spec object: the sensor that launches the job and
    the definitions holding it must share one definition."""
    built = _BUILT.get(id(spec))
    if built is None or built[0] is not spec:
        built = (spec, build_rollback_jobs(spec))
        _BUILT[id(spec)] = built
    return built[1]


def __getattr__(name: str) -> Any:
    """`rollback_jobs` (and each of them) for the settings' spec, built on first use."""
    jobs = {"rollback_job": 0, "rollback_undo_job": 1}
    if name == "rollback_jobs":
        return jobs_for(current_spec())
    if name in jobs:
        return jobs_for(current_spec())[jobs[name]]
    raise AttributeError(name)
