"""`strangler check`: the consistency checks for a day or a range of days, from the shell.

Exits 1 when any check does not pass (warnings included), 2 on bad arguments, 3 when a store
it reads does not answer; every run is stored in `migration_state.consistency_reports` so
trends can be read back.
"""

from __future__ import annotations

from datetime import date, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import psycopg
import typer
from rich.console import Console

from strangler.checks.systems import SYSTEMS, System
from strangler.cli_options import FromOpt, PartitionOpt, ToOpt, days
from strangler.preflight import Service, require
from strangler.settings import get_settings

if TYPE_CHECKING:
    from strangler.checks.catalogue import CheckTargets

check_app = typer.Typer(help="Cross-system consistency checks of daily partitions.")
console = Console()


class SystemChoice(StrEnum):
    event_store = "event-store"
    kafka = "kafka"
    clickhouse = "clickhouse"
    weaviate = "weaviate"
    all = "all"


class FormatChoice(StrEnum):
    table = "table"
    json = "json"
    markdown = "markdown"


def partition_range(partition: date | None, start: date | None, end: date | None) -> list[str]:
    """The days asked for: one partition, an inclusive range, or yesterday (UTC) by default."""
    yesterday = date.today() - timedelta(days=1)
    return [d.isoformat() for d in days(partition, start, end, default=yesterday)]


SYSTEM_SERVICES: dict[System, tuple[Service, ...]] = {
    "event-store": ("postgres",),
    "kafka": ("postgres", "kafka"),
    "clickhouse": ("postgres", "clickhouse"),
    "weaviate": ("postgres", "weaviate"),
}


def default_targets() -> CheckTargets:
    """Targets from settings, through the same resources the assets use (imported here:
    Dagster and every store's client load only when checks run, not for `--help`)."""
    from strangler.checks.consistency import reconcile_targets
    from strangler.resources.factory import build_resources

    resources = build_resources(get_settings())
    return reconcile_targets(
        resources["postgres"],
        resources["kafka"],
        resources["clickhouse"],
        resources["weaviate"],
        resources["embedder"],
        get_settings(),
    )


@check_app.callback(invoke_without_command=True)
def check(
    system: Annotated[
        SystemChoice, typer.Option("--system", "-s", help="Which store's checks to run.")
    ] = SystemChoice.all,
    partition: PartitionOpt = None,
    start: FromOpt = None,
    end: ToOpt = None,
    fmt: Annotated[FormatChoice, typer.Option("--format", "-f")] = FormatChoice.table,
    store: Annotated[
        bool, typer.Option("--store/--no-store", help="Keep the report in consistency_reports.")
    ] = True,
) -> None:
    """Run the checks; exit 1 when any does not pass."""
    from strangler.checks.report import render, store_report
    from strangler.checks.runner import run_range

    day_keys = partition_range(partition, start, end)
    systems: list[System] = [s for s in SYSTEMS if system.value in (s, "all")]
    require(get_settings(), [service for s in systems for service in SYSTEM_SERVICES[s]])
    targets = default_targets()
    outcomes = run_range(targets, day_keys, systems)
    if store:
        with psycopg.connect(targets.postgres_conninfo) as conn:
            report_id = store_report(conn, outcomes, source="cli")
    text = render(outcomes, fmt.value, console)
    if text:
        typer.echo(text)
    failed = [o for o in outcomes if not o.passed]
    if fmt == FormatChoice.table:
        stored = f"; report {report_id}" if store else ""
        console.print(
            f"{len(outcomes)} checks over {len(day_keys)} day(s), {len(failed)} not passed{stored}"
        )
    if failed:
        raise typer.Exit(1)
