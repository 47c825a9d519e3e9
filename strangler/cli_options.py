"""The day options every command shares, parsed by Click so a bad day is a usage error (exit 2).

`--partition D` or `--from D1 --to D2`: the parser rejects `2026-13-45` with the option's
name, and `days()` rejects a range that ends before it starts, both before anything
connects to a store.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

import typer


def parse_day(value: str) -> date:
    """A YYYY-MM-DD day, or Click's usage error naming the option."""
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not a day (YYYY-MM-DD): {exc}") from exc


PartitionOpt = Annotated[
    date | None,
    typer.Option("--partition", "-p", parser=parse_day, metavar="YYYY-MM-DD", help="One day."),
]
FromOpt = Annotated[
    date | None,
    typer.Option("--from", parser=parse_day, metavar="YYYY-MM-DD", help="First day of a range."),
]
ToOpt = Annotated[
    date | None,
    typer.Option(
        "--to", parser=parse_day, metavar="YYYY-MM-DD", help="Last day of a range (inclusive)."
    ),
]


def day_span(start: date, end: date) -> list[date]:
    """Every day from start to end, inclusive; a reversed range is a usage error."""
    if end < start:
        raise typer.BadParameter(
            f"{end.isoformat()} is before --from {start.isoformat()}", param_hint="--to"
        )
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def days(
    partition: date | None,
    start: date | None,
    end: date | None,
    *,
    default: date | None = None,
) -> list[date]:
    """The days asked for: one partition, an inclusive range (one end alone = that day), or
    `default` when nothing was given (a usage error when there is no default)."""
    if partition is not None and (start is not None or end is not None):
        raise typer.BadParameter("use --partition or --from/--to, not both")
    if partition is not None:
        return [partition]
    if start is None or end is None:
        one = start or end
        if one is not None:
            return [one]
        if default is None:
            raise typer.BadParameter("give --partition D, or --from D1 --to D2")
        return [default]
    return day_span(start, end)
