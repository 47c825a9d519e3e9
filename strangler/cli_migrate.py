"""`strangler migrate events | kafka`: launch Dagster materializations of a day range, with progress."""

from __future__ import annotations

import os
from datetime import date
from typing import Annotated, Any

import dagster as dg
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from strangler.launch import DayRun, day_range, materialize_days
from strangler.settings import get_settings

migrate_app = typer.Typer(
    help="Run migrations of a day range through Dagster (runs show in the UI).",
    no_args_is_help=True,
)
console = Console()

PartitionOpt = Annotated[str | None, typer.Option("--partition", help="One day, YYYY-MM-DD.")]
FromOpt = Annotated[str | None, typer.Option("--from", help="First day of a range.")]
ToOpt = Annotated[str | None, typer.Option("--to", help="Last day of a range (inclusive).")]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", envvar="DRY_RUN", help="Validate and count; write nothing.")
]
BatchOpt = Annotated[
    int | None, typer.Option("--batch-size", help="Rows per batch (default from settings).")
]


def _days(partition: str | None, start: str | None, end: str | None) -> list[date]:
    if partition:
        return [date.fromisoformat(partition)]
    if start and end:
        return day_range(date.fromisoformat(start), date.fromisoformat(end))
    raise typer.BadParameter("give --partition D, or --from D1 --to D2")


def launch(
    label: str,
    asset: dg.AssetsDefinition,
    days: list[date],
    op_config: dict[str, Any],
    progress_of: str | None,
) -> list[DayRun]:
    """Materialize `asset` for each day in the stack's instance, with a live progress bar."""
    settings = get_settings()
    os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home))
    run_config = {
        "ops": {asset.op.name: {"config": op_config}},
        "loggers": {"console": {"config": {"log_level": "INFO"}}},
    }
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
        task = progress.add_task(label, total=None, rate="")

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total or None)
            speed = progress.tasks[task].speed
            progress.update(task, rate=f"{speed:,.0f}/s" if speed else "")

        def on_day(run: DayRun) -> None:
            state = "ok" if run.success else "[red]FAILED[/red] (see the run in the UI)"
            progress.console.print(f"{run.partition_key}: run {run.run_id[:8]} {state}")

        runs = materialize_days(
            settings,
            [asset],
            days,
            instance,
            run_config=run_config,
            progress_of=progress_of,
            on_progress=on_progress,
            on_day=on_day,
            tags={"strangler/launched_by": "cli"},
        )
    summarize(runs)
    return runs


SUMMARY_FIGURES = (
    "source_rows",
    "migrated",
    "failed",
    "events_written",
    "events_published",
    "events_per_s",
    "rows",
)


def summarize(runs: list[DayRun]) -> None:
    table = Table(title="materializations")
    for column in ("day", "run", "ok", "asset", "figures"):
        table.add_column(column)
    for run in runs:
        for key, meta in run.metadata.items():
            figures = ", ".join(f"{k}={meta[k]}" for k in SUMMARY_FIGURES if k in meta)
            table.add_row(
                run.partition_key, run.run_id[:8], "yes" if run.success else "no", key, figures
            )
    console.print(table)
    if not all(r.success for r in runs):
        raise typer.Exit(1)


@migrate_app.command("events")
def migrate_events(
    partition: PartitionOpt = None,
    start: FromOpt = None,
    end: ToOpt = None,
    dry_run: DryRunOpt = False,
    batch_size: BatchOpt = None,
) -> None:
    """Monolith rows -> event store (asset event_store/events)."""
    from strangler.assets.event_store import event_store_events

    config: dict[str, Any] = {"dry_run": dry_run}
    if batch_size:
        config["batch_size"] = batch_size
    launch(
        "event_store/events",
        event_store_events,
        _days(partition, start, end),
        config,
        "event_store",
    )


@migrate_app.command("kafka")
def migrate_kafka(
    partition: PartitionOpt = None,
    start: FromOpt = None,
    end: ToOpt = None,
    dry_run: DryRunOpt = False,
    workers: Annotated[int | None, typer.Option("--workers", help="Topics in parallel.")] = None,
    batch_size: BatchOpt = None,
) -> None:
    """Outbox -> Kafka topics (assets kafka/*), exactly once."""
    from strangler.assets.kafka_topics import kafka_topics

    config: dict[str, Any] = {"dry_run": dry_run}
    if workers:
        config["workers"] = workers
    if batch_size:
        config["batch_size"] = batch_size
    launch("kafka topics", kafka_topics, _days(partition, start, end), config, "kafka:%")
