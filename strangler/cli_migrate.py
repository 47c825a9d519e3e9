"""`strangler migrate events | kafka | clickhouse | weaviate | all`: Dagster runs of a day range.

Every stage goes through Dagster (in the stack's instance, so the UI shows the runs) with a
progress bar (rate, ETA). The days asked for become the estate's partitions (days, or the
weeks or months holding them); a stage whose asset has a backfill policy materializes them as
range runs of up to `STRANGLER_MAX_PARTITIONS_PER_RUN` partitions, the same path a Dagster
backfill takes, others one run per partition. Before launching, the stores the stage needs are asked
whether they answer, so a stopped service is one line, not a traceback minutes later.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any

import psycopg
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from strangler.cli_errors import RunFailed
from strangler.cli_options import FromOpt, PartitionOpt, ToOpt, days
from strangler.preflight import Service, require
from strangler.settings import get_settings
from strangler.stack.dagster_home import event_batch_env

if TYPE_CHECKING:
    import dagster as dg

    from strangler.launch import DayRun

migrate_app = typer.Typer(
    help="Run migrations of a day range through Dagster (runs show in the UI): the days'"
    " partitions go in range runs of up to STRANGLER_MAX_PARTITIONS_PER_RUN where the stage"
    " supports them.",
    no_args_is_help=True,
)
console = Console()

DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        envvar="STRANGLER_DRY_RUN",
        help="events/kafka: validate and count, write nothing; clickhouse/weaviate: show what "
        "each day would load, launch nothing.",
    ),
]
BatchOpt = Annotated[
    int | None, typer.Option("--batch-size", min=1, help="Rows per batch (default from settings).")
]
WorkersOpt = Annotated[
    int | None, typer.Option("--workers", min=1, help="Kafka topics published in parallel.")
]


@dataclass(frozen=True)
class Stage:
    """One asset (or multi-asset) of the pipeline, as the CLI launches it."""

    name: str
    label: str
    services: tuple[Service, ...]
    progress_of: str | None
    """`migration_runs.migration` pattern of its per-batch progress; None: progress per day."""
    dry_run_in_config: bool
    config: dict[str, Any] = field(default_factory=dict)

    def asset(self) -> dg.AssetsDefinition:
        """Imported per stage: a spec may have no ClickHouse or Weaviate side yet."""
        if self.name == "events":
            from strangler.assets.event_store import event_store_events

            return event_store_events
        if self.name == "kafka":
            from strangler.assets.kafka_topics import kafka_topics

            return kafka_topics
        if self.name == "clickhouse":
            from strangler.assets.clickhouse_tables import clickhouse_analytics

            return clickhouse_analytics
        from strangler.assets.weaviate_collections import weaviate_collections

        if weaviate_collections is None:
            raise ValueError("the spec declares no search: block, so there is no Weaviate stage")
        return weaviate_collections


EVENTS = Stage("events", "event_store/events", ("dagster", "postgres"), "event_store", True)
KAFKA = Stage("kafka", "kafka topics", ("dagster", "postgres", "kafka"), "kafka:%", True)
CLICKHOUSE = Stage(
    "clickhouse",
    "clickhouse analytics",
    ("dagster", "postgres", "kafka", "clickhouse"),
    None,
    False,
)
WEAVIATE = Stage(
    "weaviate", "weaviate collections", ("dagster", "postgres", "kafka", "weaviate"), None, False
)
STAGES = (EVENTS, KAFKA, CLICKHOUSE, WEAVIATE)


def partition_keys(day_list: Sequence[date]) -> list[str]:
    """The estate's partitions holding these days (a week or month once, by its first day)."""
    from strangler.spec import current_spec

    estate = current_spec().estate
    return sorted({estate.partition_start(day).isoformat() for day in day_list})


def launch(
    label: str,
    asset: dg.AssetsDefinition,
    day_list: Sequence[date],
    op_config: dict[str, Any],
    progress_of: str | None,
) -> list[DayRun]:
    """Materialize `asset` for the partitions of these days in the stack's instance, with a
    live progress bar.

    With `progress_of` the bar counts rows (the migration's own `migration_runs` progress);
    without, it counts partitions. Raises RunFailed (exit 1) when a run fails.
    """
    import dagster as dg

    from strangler.launch import materialize_days

    settings = get_settings()
    os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home))
    os.environ.update(event_batch_env())  # a range run's events written in batches
    run_config = {
        "ops": {asset.op.name: {"config": op_config}},
        "loggers": {"console": {"config": {"log_level": "INFO"}}},
    }
    keys = partition_keys(day_list)
    unit = "rows" if progress_of else "partitions"
    started = time.monotonic()
    with (
        dg.DagsterInstance.get() as instance,
        Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=console,
        ) as progress,
    ):
        hold_connections(instance)
        task = progress.add_task(label, total=None if progress_of else len(keys), rate=f"0 {unit}")

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total or None)
            speed = progress.tasks[task].speed
            progress.update(task, rate=f"{speed:,.0f} rows/s" if speed else "")

        def on_day(run: DayRun) -> None:
            state = "ok" if run.success else "[red]FAILED[/red] (see the run in the UI)"
            progress.console.print(f"{run.partition_key}: run {run.run_id[:8]} {state}")
            if not progress_of:
                progress.advance(task, run.partitions)
                per_key = (time.monotonic() - started) / max(progress.tasks[task].completed, 1)
                progress.update(task, rate=f"{per_key:,.1f} s/partition")

        runs = materialize_days(
            settings,
            [asset],
            keys,
            instance,
            run_config=run_config,
            progress_of=progress_of,
            on_progress=on_progress if progress_of else None,
            on_day=on_day,
            tags={"strangler/launched_by": "cli"},
        )
    summarize(runs)
    return runs


def hold_connections(instance: dg.DagsterInstance) -> None:
    """Keep the instance's storage connections open across events, as the webserver does.

    dagster-postgres opens a new connection per event by default (NullPool), and a range run
    over years of partitions writes events by the thousand (per-partition check evaluations are
    not batched): connecting was most of their cost. No statement timeout: the runs are ours.
    """
    instance.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=4)


SUMMARY_FIGURES = (
    "source_rows",
    "migrated",
    "failed",
    "events_written",
    "events_published",
    "events_per_s",
    "rows",
    "objects",
)


RATES = ("events_per_s",)
"""Figures that do not add up over partitions (a range's row shows the other figures' sums)."""


def summary_rows(run: DayRun) -> list[tuple[str, str, str]]:
    """(partitions, asset, figures) of one run: a row per asset, a range run's partitions
    folded into it (years of daily partitions would be thousands of rows)."""
    totals: dict[str, dict[str, Any]] = {}
    partitions: dict[str, int] = {}
    for key, meta in run.metadata.items():
        asset = key.split(" ", 1)[0] if run.partitions > 1 else key
        partitions[asset] = partitions.get(asset, 0) + 1
        figures = totals.setdefault(asset, {})
        for name in SUMMARY_FIGURES:
            value = meta.get(name)
            if value is None:
                continue
            if run.partitions > 1 and name in RATES:
                continue
            if run.partitions > 1 and isinstance(value, int | float):
                figures[name] = figures.get(name, 0) + value
            else:
                figures[name] = value
    label = run.partition_key
    return [
        (
            label if run.partitions == 1 else f"{label} ({partitions[asset]} partitions)",
            asset,
            ", ".join(f"{k}={v}" for k, v in figures.items()),
        )
        for asset, figures in totals.items()
    ]


def summarize(runs: list[DayRun]) -> None:
    """The figures of each run's materializations; RunFailed when any run failed."""
    table = Table(title="materializations")
    for column in ("partitions", "run", "ok", "asset", "figures"):
        table.add_column(column)
    for run in runs:
        for partitions, asset, figures in summary_rows(run):
            table.add_row(
                partitions, run.run_id[:8], "yes" if run.success else "no", asset, figures
            )
    console.print(table)
    failed = [r for r in runs if not r.success]
    if failed:
        raise RunFailed(
            f"the run of {failed[0].partition_key} failed (Dagster run {failed[0].run_id}); "
            "its logs are in the UI (`strangler ui`)"
        )


def preview(stage: Stage, day_list: Sequence[date]) -> None:
    """Dry run of a sink stage: what each day would load (event store and relayed offsets)."""
    settings = get_settings()
    password = settings.postgres_password.get_secret_value() if settings.postgres_password else None
    table = Table(title=f"{stage.label}: dry run, nothing launched")
    for column in ("partition", "events in the event store", "relayed to Kafka (offsets)"):
        table.add_column(column)
    with psycopg.connect(settings.postgres_url, password=password) as conn:
        for key in partition_keys(day_list):
            events = conn.execute(
                "SELECT count(*) FROM eventstore.outbox WHERE partition_key = %s", (key,)
            ).fetchone()
            relayed = conn.execute(
                "SELECT coalesce(sum(end_offset - start_offset), 0)"
                " FROM migration_state.kafka_offset_ranges WHERE partition_key = %s",
                (key,),
            ).fetchone()
            table.add_row(
                key,
                str(events[0] if events else 0),
                str(relayed[0] if relayed else 0),
            )
    console.print(table)


def run_stage(stage: Stage, day_list: Sequence[date], dry_run: bool) -> None:
    """Check the stage's services, then launch it (or, for a sink's dry run, preview it)."""
    settings = get_settings()
    require(settings, stage.services)
    if dry_run and not stage.dry_run_in_config:
        preview(stage, day_list)
        return
    config = {**stage.config, **({"dry_run": dry_run} if stage.dry_run_in_config else {})}
    launch(stage.label, stage.asset(), day_list, config, stage.progress_of)


def _tuned(stage: Stage, **knobs: int | None) -> Stage:
    config = {k: v for k, v in knobs.items() if v}
    return Stage(
        stage.name,
        stage.label,
        stage.services,
        stage.progress_of,
        stage.dry_run_in_config,
        config,
    )


@migrate_app.command("events")
def migrate_events(
    partition: PartitionOpt = None,
    start: FromOpt = None,
    end: ToOpt = None,
    dry_run: DryRunOpt = False,
    batch_size: BatchOpt = None,
) -> None:
    """Monolith rows -> event store (asset event_store/events)."""
    run_stage(_tuned(EVENTS, batch_size=batch_size), days(partition, start, end), dry_run)


@migrate_app.command("kafka")
def migrate_kafka(
    partition: PartitionOpt = None,
    start: FromOpt = None,
    end: ToOpt = None,
    dry_run: DryRunOpt = False,
    workers: WorkersOpt = None,
    batch_size: BatchOpt = None,
) -> None:
    """Outbox -> Kafka topics (assets kafka/*), exactly once."""
    stage = _tuned(KAFKA, workers=workers, batch_size=batch_size)
    run_stage(stage, days(partition, start, end), dry_run)


@migrate_app.command("clickhouse")
def migrate_clickhouse(
    partition: PartitionOpt = None,
    start: FromOpt = None,
    end: ToOpt = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Kafka (by the day's offset ranges) -> ClickHouse analytics tables (assets clickhouse/*)."""
    run_stage(CLICKHOUSE, days(partition, start, end), dry_run)


@migrate_app.command("weaviate")
def migrate_weaviate(
    partition: PartitionOpt = None,
    start: FromOpt = None,
    end: ToOpt = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Kafka -> Weaviate collections with embeddings and references (assets weaviate/*)."""
    run_stage(WEAVIATE, days(partition, start, end), dry_run)


@migrate_app.command("all")
def migrate_all(
    partition: PartitionOpt = None,
    start: FromOpt = None,
    end: ToOpt = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Every stage in order (events, kafka, clickhouse, weaviate); stops at the first failure."""
    day_list = days(partition, start, end)
    require(get_settings(), [s for stage in STAGES for s in stage.services])
    for stage in STAGES:
        run_stage(stage, day_list, dry_run)
