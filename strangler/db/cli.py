"""`strangler db ...`: apply, roll back and inspect the Postgres schema migrations."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from strangler.db import migrations
from strangler.settings import get_settings

db_app = typer.Typer(
    help="Postgres schema migrations (sql/postgres, via yoyo).", no_args_is_help=True
)
console = Console()

UrlOpt = Annotated[
    str | None,
    typer.Option("--url", help="libpq URL; default STRANGLER_POSTGRES_URL.", show_default=False),
]


def _target(url: str | None) -> tuple[str, str | None]:
    settings = get_settings()
    password = settings.postgres_password.get_secret_value() if settings.postgres_password else None
    return (url or settings.postgres_url, password)


def _print_ids(title: str, ids: list[str]) -> None:
    if not ids:
        console.print(f"{title}: nothing to do")
        return
    table = Table(title=title)
    table.add_column("#", justify="right")
    table.add_column("migration")
    for n, mid in enumerate(ids, start=1):
        table.add_row(str(n), mid)
    console.print(table)


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc}")
    return typer.Exit(code=1)


@db_app.command("migrate")
def migrate_cmd(url: UrlOpt = None) -> None:
    """Apply every pending migration, in dependency order."""
    target, password = _target(url)
    try:
        applied = migrations.migrate(target, password=password)
    except migrations.MigrationError as exc:
        raise _fail(exc) from exc
    _print_ids("applied", applied)


@db_app.command("rollback")
def rollback_cmd(
    url: UrlOpt = None,
    count: Annotated[int, typer.Option("--count", "-n", help="How many to roll back.")] = 1,
    to: Annotated[
        str | None, typer.Option("--to", help="Roll back everything applied after this migration.")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Roll back every applied migration.")] = False,
) -> None:
    """Roll back the newest migration(s); dependents always go first."""
    if all_ and to is not None:
        raise _fail(ValueError("--all and --to exclude each other"))
    target, password = _target(url)
    try:
        undone = migrations.rollback(
            target, count=None if all_ else count, to=to, password=password
        )
    except migrations.MigrationError as exc:
        raise _fail(exc) from exc
    _print_ids("rolled back", undone)


@db_app.command("status")
def status_cmd(url: UrlOpt = None) -> None:
    """List every migration and when it was applied."""
    target, password = _target(url)
    try:
        rows = migrations.status(target, password=password)
    except migrations.MigrationError as exc:
        raise _fail(exc) from exc
    table = Table(title="postgres migrations")
    table.add_column("migration")
    table.add_column("applied")
    table.add_column("applied at (UTC)")
    for row in rows:
        table.add_row(
            row.id,
            "[green]yes[/green]" if row.applied else "[yellow]no[/yellow]",
            row.applied_at.isoformat(timespec="seconds") if row.applied_at else "-",
        )
    console.print(table)
