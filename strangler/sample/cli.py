"""`strangler seed`: fill the sample monolith (schema ``monolith``) with deterministic data.

Mount either way: ``app.command("seed")(seed_command)`` or ``app.add_typer(seed_app,
name="seed")`` (the command is the group's callback, so both give ``strangler seed --scale 2``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import psycopg
import typer
from rich.console import Console

from strangler.sample.seed import SCHEMA
from strangler.sample.seed import seed as run_seed
from strangler.settings import get_settings

console = Console()


def _schema_exists(url: str, password: str | None) -> bool:
    with psycopg.connect(url, password=password) as conn:
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)", (SCHEMA,)
        ).fetchone()
        return bool(row and row[0])


def _ensure_schema(url: str, password: str | None) -> None:
    """Apply pending migrations when the monolith schema is missing (a fresh database)."""
    if _schema_exists(url, password):
        return
    try:
        from strangler.db.migrations import migrate
    except ImportError as exc:
        raise typer.BadParameter(
            f"schema {SCHEMA!r} is missing and strangler.db.migrations is not available; "
            "apply sql/postgres/001_monolith.sql first"
        ) from exc
    applied = migrate(url, password=password)
    console.print(f"applied migrations: {', '.join(applied) or 'none'}")


def _parse_day(value: str | None) -> date | None:
    return None if value is None else datetime.strptime(value, "%Y-%m-%d").date()


def seed_command(
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same data.")] = 7,
    days: Annotated[int, typer.Option(help="UTC days of data, ending yesterday.", min=1)] = 7,
    scale: Annotated[
        float, typer.Option(help="1.0 = ~200 customers, 1k documents, 3k pages, 1.5k jobs.")
    ] = 1.0,
    dirty_rate: Annotated[
        float, typer.Option(help="Share of rows carrying one kind of dirt.", min=0.0, max=1.0)
    ] = 0.02,
    start_day: Annotated[
        str | None,
        typer.Option(help="First day (YYYY-MM-DD) instead of ending yesterday; reproducible."),
    ] = None,
    url: Annotated[
        str | None, typer.Option(help="libpq URL; default STRANGLER_POSTGRES_URL.")
    ] = None,
) -> None:
    """Replace the sample monolith's rows with deterministic, realistically dirty data."""
    settings = get_settings()
    target = url or settings.postgres_url
    password = settings.postgres_password.get_secret_value() if settings.postgres_password else None
    if scale <= 0:
        raise typer.BadParameter("--scale must be > 0")
    _ensure_schema(target, password)
    with psycopg.connect(target, password=password, autocommit=True) as conn:
        report = run_seed(
            conn,
            seed=seed,
            days=days,
            scale=scale,
            dirty_rate=dirty_rate,
            start_day=_parse_day(start_day),
        )
    report.render(console)


seed_app = typer.Typer(help="The sample monolith.", add_completion=False)
seed_app.callback(invoke_without_command=True)(seed_command)
