"""`strangler check`: the consistency checks for a day or a range of days, from the shell.

Exits 1 when any check does not pass (warnings included), 2 on bad arguments; every run is
stored in `migration_state.consistency_reports` so trends can be read back.
"""

from __future__ import annotations

from datetime import date, timedelta
from enum import StrEnum
from typing import Annotated

import psycopg
import typer
from rich.console import Console

from strangler.checks.consistency import reconcile_targets
from strangler.checks.report import render, store_report
from strangler.checks.runner import SYSTEMS, CheckTargets, System, run_range
from strangler.resources.factory import build_resources
from strangler.settings import get_settings

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
    if partition is not None and (start is not None or end is not None):
        raise typer.BadParameter("use --partition or --from/--to, not both")
    if partition is not None:
        return [partition.isoformat()]
    if start is None and end is None:
        return [(date.today() - timedelta(days=1)).isoformat()]
    first = start or end
    last = end or start
    assert first is not None and last is not None
    if last < first:
        raise typer.BadParameter(f"--to {last} is before --from {first}")
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def default_targets() -> CheckTargets:
    """Targets from settings, through the same resources the assets use."""
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
    partition: Annotated[
        str | None, typer.Option("--partition", "-p", help="One day, YYYY-MM-DD.")
    ] = None,
    start: Annotated[str | None, typer.Option("--from", help="First day (inclusive).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last day (inclusive).")] = None,
    fmt: Annotated[FormatChoice, typer.Option("--format", "-f")] = FormatChoice.table,
    store: Annotated[
        bool, typer.Option("--store/--no-store", help="Keep the report in consistency_reports.")
    ] = True,
) -> None:
    """Run the checks; exit 1 when any does not pass."""
    try:
        days = partition_range(
            _day(partition, "--partition"), _day(start, "--from"), _day(end, "--to")
        )
    except typer.BadParameter as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    systems: list[System] = [s for s in SYSTEMS if system.value in (s, "all")]
    targets = default_targets()
    outcomes = run_range(targets, days, systems)
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
            f"{len(outcomes)} checks over {len(days)} day(s), {len(failed)} not passed{stored}"
        )
    if failed:
        raise typer.Exit(1)


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{option} {value!r} is not a YYYY-MM-DD day") from exc
