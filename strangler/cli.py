"""`strangler ...`: the command line of the platform (Typer)."""

from __future__ import annotations

import os
import subprocess
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from strangler import cli_errors
from strangler.cli_errors import DEBUG_ENV
from strangler.settings import Settings, get_settings
from strangler.stack.manager import Stack
from strangler.stack.process import StackError

app = typer.Typer(
    help="Strangler: migrate a monolith's Postgres into an event-sourced estate.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold passwords
    epilog="Exit codes: 0 done, 1 a run or check failed, 2 usage error, "
    "3 a service or the Dagster instance is unreachable or not set up.",
)
stack_app = typer.Typer(help="The local service stack (no Docker).", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
console = Console()


@app.callback()
def root(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            envvar=DEBUG_ENV,
            help="Show the traceback of an unexpected error instead of one line.",
        ),
    ] = False,
) -> None:
    """Remember --debug for the error handler (`strangler.cli_errors.run`)."""
    cli_errors.state.debug = cli_errors.state.debug or debug


ServicesOpt = Annotated[
    list[str] | None,
    typer.Option("--only", help="Limit to these services (postgres, kafka, weaviate, clickhouse)."),
]


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _print_status(stack: Stack) -> bool:
    table = Table(title="strangler stack")
    for column in ("service", "version", "address", "pid", "data dir", "healthy"):
        table.add_column(column)
    all_ok = True
    for s in stack.status():
        all_ok &= s.healthy
        table.add_row(
            s.name,
            s.version,
            s.address,
            str(s.pid) if s.pid else "-",
            str(s.data_dir),
            "[green]yes[/green]" if s.healthy else f"[red]no[/red] {s.detail}"[:120],
        )
    console.print(table)
    return all_ok


@stack_app.command("up")
def stack_up(only: ServicesOpt = None) -> None:
    """Install (once, cached under STRANGLER_HOME) and start the services; a no-op when running."""
    stack = Stack(get_settings())
    started = time.monotonic()
    try:
        timings = stack.up(only)
    except StackError as exc:
        console.print(f"[red]stack up failed[/red] {exc}")
        raise typer.Exit(1) from exc
    for t in timings:
        if t.seconds >= 0.05:
            console.print(f"  {t.service:<10} {t.action:<8} {t.seconds:6.1f}s")
    console.print(f"stack up in {time.monotonic() - started:.1f}s")
    if not _print_status(stack):
        raise typer.Exit(1)


@stack_app.command("down")
def stack_down(only: ServicesOpt = None) -> None:
    """Stop the services; data stays, so `up` brings it back."""
    Stack(get_settings()).down(only)
    console.print("stack stopped")


@stack_app.command("status")
def stack_status() -> None:
    """Service, version, address, pid, data dir, healthy."""
    if not _print_status(Stack(get_settings())):
        raise typer.Exit(1)


@stack_app.command("logs")
def stack_logs(
    service: Annotated[str, typer.Argument(help="postgres, kafka, weaviate (or *-install)")],
    lines: Annotated[int, typer.Option("-n", help="Lines from the end.")] = 50,
    follow: Annotated[bool, typer.Option("-f", "--follow")] = False,
) -> None:
    """Print a service's log."""
    log = get_settings().logs_dir / f"{service}.log"
    if not log.exists():
        console.print(f"[red]no log at {log}[/red]")
        raise typer.Exit(1)
    args = ["tail", f"-n{lines}", *(["-f"] if follow else []), str(log)]
    subprocess.run(args, check=False)


@stack_app.command("sizes")
def stack_sizes() -> None:
    """Install sizes of the cached services."""
    stack = Stack(get_settings())
    for service in stack.services:
        console.print(f"{service.name:<10} {_human_bytes(service.install_size())}")


@app.command("demo")
def demo(
    days: Annotated[int, typer.Option(help="Sample days to seed and migrate.")] = 7,
    scale: Annotated[float, typer.Option(help="Sample volume (1 = ~6k rows).")] = 1.0,
    dirty_rate: Annotated[float, typer.Option(help="Share of dirty rows.")] = 0.02,
    seed_value: Annotated[int, typer.Option("--seed", help="Sample seed.")] = 7,
) -> None:
    """The main job: stack up, round-trip every store, seed the monolith, migrate each day."""
    from strangler.assets.clickhouse_tables import clickhouse_analytics
    from strangler.assets.event_store import event_store_events
    from strangler.assets.kafka_topics import kafka_topics
    from strangler.assets.weaviate_collections import weaviate_collections
    from strangler.checks.cli import FormatChoice, check
    from strangler.cli_migrate import launch
    from strangler.demo import sample_days, seed_sample
    from strangler.resources.factory import build_resources
    from strangler.stack.roundtrip import round_trip_all

    settings = get_settings()
    stack_up(None)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home))
    r = build_resources(settings)
    results = round_trip_all(
        r["postgres"], r["kafka"], r["clickhouse"], r["weaviate"], r["embedder"]
    )  # type: ignore[arg-type]
    table = Table(title="round trip through every resource")
    for column in ("resource", "what happened", "seconds"):
        table.add_column(column)
    for rt in results:
        table.add_row(rt.resource, rt.detail, f"{rt.seconds:.2f}")
    console.print(table)

    report = seed_sample(
        settings, days=days, scale=scale, dirty_rate=dirty_rate, seed_value=seed_value
    )
    report.render(console)
    sample = sample_days(report)
    console.print(
        f"migrating {len(sample)} sample days through Dagster (home {os.environ['DAGSTER_HOME']})"
    )
    launch("event_store/events", event_store_events, sample, {"dry_run": False}, "event_store")
    launch("kafka topics", kafka_topics, sample, {"dry_run": False}, "kafka:%")
    launch("clickhouse analytics", clickhouse_analytics, sample, {}, None)
    _print_analytics_examples(settings)
    if weaviate_collections is not None:
        launch("weaviate collections", weaviate_collections, sample, {}, None)
        _print_semantic_example(settings)
    console.print("consistency of every sample day across the estate:")
    check(
        partition=None,
        start=sample[0],
        end=sample[-1],
        fmt=FormatChoice.markdown,
    )
    console.print(
        "failed rows: migration_state.failed_entities; runs: `dagster dev` in this folder"
    )


def _print_analytics_examples(settings: Settings) -> None:
    """Three example analytics queries over what the main job loaded, with their results."""
    from strangler.analytics.ddl import DdlOptions
    from strangler.analytics.queries import example_queries
    from strangler.resources.clickhouse_session import clickhouse_client

    options = DdlOptions(database=settings.clickhouse_database, cluster=settings.clickhouse_cluster)
    with clickhouse_client(
        settings.clickhouse_url, lock_timeout_s=settings.clickhouse_lock_timeout_s
    ) as client:
        for title, query in example_queries(options).items():
            result = client.query(query)
            table = Table(title=title)
            for column in result.column_names:
                table.add_column(column)
            for row in result.result_rows[:12]:
                table.add_row(*(str(v) for v in row))
            console.print(table)


def _print_semantic_example(settings: Settings) -> None:
    """The spec's first search probe over its collection (every tenant), top hits."""
    from strangler.resources.factory import build_resources
    from strangler.search.schema import CollectionNames
    from strangler.search.tenants import near_vector_all
    from strangler.spec import current_spec

    probes = [(a, q) for a in current_spec().searchable if a.search for q in a.search.queries]
    if not probes:
        return
    aggregate, probe = probes[0]
    resources = build_resources(settings)
    vector = resources["embedder"].encode([probe.text])[0]
    names = CollectionNames(settings.weaviate_collection_prefix)
    shown = list(probe.expect)
    with resources["weaviate"].client() as client:
        hits = near_vector_all(client, names.of(aggregate.name), vector.tolist(), 5)
    table = Table(title=f"semantic search over {aggregate.name}: {probe.text!r}")
    for column in ("distance", "object", "tenant", *shown):
        table.add_column(column)
    for tenant, obj in hits:
        distance = obj.metadata.distance if obj.metadata else None
        table.add_row(
            f"{distance:.3f}" if distance is not None else "-",
            str(obj.uuid)[:8],
            tenant or "-",
            *(str(obj.properties.get(name, ""))[:80] for name in shown),
        )
    console.print(table)


def _mount_optional() -> None:
    """Mount the sub-commands that live beside their modules (db, seed)."""
    from strangler.checks.cli import check_app
    from strangler.cli_migrate import migrate_app
    from strangler.db.cli import db_app
    from strangler.rollback.cli import rollback_app
    from strangler.sample.cli import seed_command
    from strangler.spec.cli import spec_app
    from strangler.ui import ui_command

    app.add_typer(db_app, name="db")
    app.add_typer(migrate_app, name="migrate")
    app.add_typer(check_app, name="check")
    app.add_typer(rollback_app, name="rollback")
    app.add_typer(spec_app, name="spec")
    app.command("seed")(seed_command)
    app.command("ui")(ui_command)


_mount_optional()


def main() -> None:
    """`python -m strangler.cli`; the console script is `strangler.cli_errors:main`."""
    cli_errors.main()


if __name__ == "__main__":
    main()
