"""`strangler spec ...`: draft a spec from a database, check it, show it, and its JSON Schema.

Errors follow `strangler.cli_errors`: each problem is one line on stderr (`file:line: key:
message`), exit 1 when the spec has problems, 2 for usage errors, 3 when the database does
not answer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from strangler.cli_errors import ServiceUnavailable, redact
from strangler.spec.catalog import oldest_day, read_catalog, read_only, user_schemas
from strangler.spec.check import check_spec, check_sql, check_structure, did_you_mean
from strangler.spec.init import draft_spec, own_day_columns
from strangler.spec.json_schema import SCHEMA_FILE, render_schema
from strangler.spec.load import Lines, SpecError, SpecProblem, load_spec_lines, parse_spec_lines
from strangler.spec.models import Aggregate, EstateSpec, OwnDay, ParentDay

spec_app = typer.Typer(
    help="The estate spec (strangler.yaml): draft it from a database, check, show, JSON Schema.",
    no_args_is_help=True,
)
console = Console()

SpecFile = Annotated[
    Path | None,
    typer.Argument(help="Spec file (default: the STRANGLER_SPEC setting).", show_default=False),
]


class Format(StrEnum):
    table = "table"
    json = "json"


def _say_problems(problems: list[SpecProblem]) -> None:
    for problem in problems:
        typer.echo(str(problem), err=True)


def _load(file: Path | None) -> tuple[EstateSpec, Lines, Path]:
    """The spec with its line map; a spec that does not load ends the command (exit 1)."""
    if file is None:
        from strangler.settings import get_settings

        file = get_settings().spec
    if not file.is_file():
        raise typer.BadParameter(f"{file}: no such file", param_hint="FILE")
    try:
        spec, lines = load_spec_lines(file)
    except SpecError as exc:
        _say_problems(exc.problems)
        raise typer.Exit(1) from exc
    return spec, lines, file


@contextmanager
def _connected(url: str, option: str) -> Iterator[psycopg.Connection[Any]]:
    """A read-only connection; a database that does not answer is exit 3, one line."""
    try:
        with read_only(url) as conn:
            yield conn
    except psycopg.OperationalError as exc:
        reason = " ".join(line.strip() for line in str(exc).splitlines()).rstrip(".?")
        raise ServiceUnavailable(
            "PostgreSQL",
            redact(url),
            option,
            reason,
            "Check the URL and that the server runs; a role that may SELECT suffices.",
        ) from exc


@spec_app.command("init")
def init(
    url: Annotated[
        str,
        typer.Option("--url", help="libpq URL of the monolith (a read-only role suffices)."),
    ],
    schema: Annotated[
        list[str] | None,
        typer.Option("--schema", "-s", help="Schema to draft (repeatable; default: every one)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write here instead of stdout.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing -o file.")] = False,
) -> None:
    """Draft a commented spec from the database's catalog: one aggregate per keyed table."""
    if output is not None and output.exists() and not force:
        raise typer.BadParameter(f"{output} exists; --force overwrites it", param_hint="-o")
    with _connected(url, "--url") as conn:
        catalog = read_catalog(conn, schema or user_schemas(conn))
        schemas = list(schema) if schema else list(catalog.schemas)
        for name in schemas:
            if name not in catalog.schemas:
                raise typer.BadParameter(
                    f"schema {name} does not exist in database {catalog.database}"
                    + did_you_mean(name, catalog.all_schemas),
                    param_hint="--schema",
                )
        first = oldest_day(conn, own_day_columns(catalog, schemas))
    ref = str(SCHEMA_FILE)
    if output is not None and os.path.commonpath([SCHEMA_FILE, output.resolve()]) != "/":
        ref = os.path.relpath(SCHEMA_FILE, output.resolve().parent)  # both in one tree
    text = draft_spec(catalog, schemas, ref, first)
    where = str(output) if output else "<draft>"
    if output is not None:
        output.write_text(text, encoding="utf-8")
    else:
        typer.echo(text, nl=False)
    try:
        spec, lines = parse_spec_lines(text, where)
        problems = check_spec(spec, catalog, path=where, lines=lines)
    except SpecError as exc:
        problems = exc.problems
    if problems:  # a bug of the drafting: say so rather than hand over a broken file
        _say_problems(problems)
        raise typer.Exit(1)
    if output is not None:
        typer.echo(
            f"wrote {output}: {len(spec.aggregates)} aggregates from {catalog.database};"
            f" review it, then `strangler spec check {output} --against URL`",
            err=True,
        )


@spec_app.command("check")
def check(
    file: SpecFile = None,
    against: Annotated[
        str | None,
        typer.Option(
            "--against", help="libpq URL of the monolith: check names, keys and types too."
        ),
    ] = None,
) -> None:
    """Check a spec: its structure, and with --against the database it describes."""
    spec, lines, path = _load(file)
    problems = check_structure(spec, path=str(path), lines=lines)
    where = ""
    if against is not None:
        schemas = sorted({a.source.db_schema for a in spec.aggregates})
        with _connected(against, "--against") as conn:
            catalog = read_catalog(conn, schemas)
            problems = check_spec(spec, catalog, path=str(path), lines=lines)
            if not problems:  # names exist, so the SQL expressions can be compiled
                problems = check_sql(spec, conn, path=str(path), lines=lines)
        where = f", checked against database {catalog.database}"
    if problems:
        _say_problems(problems)
        raise typer.Exit(1)
    types = sum(len(a.event_types) for a in spec.aggregates)
    typer.echo(f"ok: {len(spec.aggregates)} aggregates, {types} event types{where}")


def _partitioning(aggregate: Aggregate) -> str:
    part = aggregate.partitioning
    if isinstance(part, OwnDay):
        return f"day of {part.time_column}"
    if isinstance(part, ParentDay):
        return f"day of parent {part.parent}"
    return "reference data"


def _rules(aggregate: Aggregate) -> list[str]:
    out = []
    for name, declared in aggregate.columns.items():
        parts = [
            flag
            for flag, on in (
                ("required", declared.required),
                ("json", declared.json_),
                ("no_control_chars", declared.no_control_chars),
                ("not_future", declared.not_future),
            )
            if on
        ]
        parts += [f"min {declared.min:g}"] if declared.min is not None else []
        parts += [f"max {declared.max:g}"] if declared.max is not None else []
        parts += [f"as {declared.as_}"] if declared.as_ else []
        out.append(f"{name}: {', '.join(parts)}" if parts else name)
    out += [
        f"orphan_fk: ({', '.join(p.columns)}) -> {p.aggregate}"
        for p in aggregate.parents
        if p.enforce
    ]
    out += [f"unique: ({', '.join(u)})" for u in aggregate.unique]
    return out


def summary(spec: EstateSpec, aggregate: Aggregate) -> dict[str, Any]:
    """What `spec show` says of one aggregate (also its JSON form)."""
    return {
        "name": aggregate.name,
        "table": aggregate.source.qualified,
        "key": list(aggregate.source.primary_key),
        "partitioning": _partitioning(aggregate),
        "topic": spec.topic_of(aggregate.name),
        "fold_into": aggregate.fold_into,
        "event_types": aggregate.event_types,
        "rules": _rules(aggregate),
    }


@spec_app.command("show")
def show(
    file: SpecFile = None,
    fmt: Annotated[Format, typer.Option("--format", help="table or json.")] = Format.table,
    ddl: Annotated[
        bool, typer.Option("--ddl", help="Print the ClickHouse DDL the spec generates instead.")
    ] = False,
) -> None:
    """Per aggregate: source table, key, partitioning, topic, event types and rules."""
    spec, _, path = _load(file)
    if ddl:
        from strangler.analytics.ddl import DdlOptions
        from strangler.analytics.estate_ddl import ddl_text
        from strangler.settings import get_settings

        settings = get_settings()
        options = DdlOptions(settings.clickhouse_database, settings.clickhouse_cluster)
        typer.echo(ddl_text(spec, options, settings.postgres_url), nl=False)
        return
    rows = [summary(spec, a) for a in spec.aggregates]
    if fmt is Format.json:
        document = {"file": str(path), "estate": spec.estate.name, "aggregates": rows}
        typer.echo(json.dumps(document, indent=2))
        return
    console.print(f"estate {spec.estate.name}: {path}")
    for row in rows:  # one narrow table per aggregate: readable in 80 columns and in pipes
        table = Table(title=row["name"], title_justify="left", show_header=False)
        table.add_column("field", style="bold")
        table.add_column("value", overflow="fold")
        topic = row["topic"] + (f" (folded into {row['fold_into']})" if row["fold_into"] else "")
        table.add_row("table", row["table"])
        table.add_row("key", ", ".join(row["key"]))
        table.add_row("partitioning", row["partitioning"])
        table.add_row("topic", topic)
        table.add_row("event types", "\n".join(row["event_types"]))
        table.add_row("rules", "\n".join(row["rules"]) or "-")
        console.print(table)


@spec_app.command("schema")
def schema(
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """The JSON Schema of spec files (editors validate and complete YAML with it)."""
    text = render_schema()
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {output}", err=True)
