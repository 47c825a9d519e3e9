"""Partition granularity from the spec: keys, windows, Dagster partitions, rollback neighbours."""

from __future__ import annotations

from datetime import UTC, date, datetime

import dagster as dg
import pytest

from strangler.migration.source import Window
from strangler.partitions import build_partitions
from strangler.rollback.plan import neighbour_days, select_days
from strangler.rollback.scope import Scope
from strangler.spec import parse_spec
from strangler.spec.load import SpecError
from strangler.spec.models import Estate

SPEC = """
version: 1
estate: {{name: tiny, first_partition: 2026-01-07{extra}}}
aggregates:
  - name: Note
    source: {{schema: app, table: notes, primary_key: [id]}}
    partitioning: {{time_column: created_at}}
    topic: app.notes
"""


def spec_with(granularity: str | None):  # type: ignore[no-untyped-def]
    extra = f", partitions: {granularity}" if granularity else ""
    return parse_spec(SPEC.format(extra=extra), "tiny.yaml")


def test_daily_is_the_default_and_keeps_every_day() -> None:
    spec = spec_with(None)
    assert spec.estate.partitions == "daily"
    partitions = build_partitions(spec)
    assert isinstance(partitions, dg.DailyPartitionsDefinition)
    assert partitions.get_partition_keys()[:2] == ["2026-01-07", "2026-01-08"]
    window = Window.for_key("2026-01-07", spec.estate)
    assert (window.start, window.end) == (
        datetime(2026, 1, 7, tzinfo=UTC),
        datetime(2026, 1, 8, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("granularity", "first", "second", "end_of_first"),
    [
        ("weekly", "2026-01-05", "2026-01-12", datetime(2026, 1, 12, tzinfo=UTC)),
        ("monthly", "2026-01-01", "2026-02-01", datetime(2026, 2, 1, tzinfo=UTC)),
    ],
)
def test_weeks_from_monday_and_calendar_months(
    granularity: str, first: str, second: str, end_of_first: datetime
) -> None:
    spec = spec_with(granularity)
    keys = build_partitions(spec).get_partition_keys()
    assert keys[:2] == [first, second]  # first_partition (a Wednesday) rounded down
    window = Window.for_key(first, spec.estate)
    assert window.start == datetime.fromisoformat(first).replace(tzinfo=UTC)
    assert window.end == end_of_first
    assert spec.estate.partition_start(date(2026, 1, 7)).isoformat() == first


def test_month_ends_roll_over_years_and_short_months() -> None:
    estate = Estate(name="x", first_partition=date(2024, 1, 1), partitions="monthly")
    assert estate.partition_end(date(2024, 12, 1)) == date(2025, 1, 1)
    assert estate.partition_end(date(2024, 2, 1)) == date(2024, 3, 1)
    assert estate.partition_start(date(2024, 2, 29)) == date(2024, 2, 1)


def test_an_invalid_granularity_is_refused() -> None:
    with pytest.raises(SpecError, match="estate.partitions: Input should be 'daily', 'weekly'"):
        spec_with("hourly")


def test_rollback_selects_and_neighbours_partition_keys() -> None:
    weekly = spec_with("weekly").estate
    scope = Scope(services=("event-store",), from_day="2026-01-07", to_day="2026-01-13")
    assert select_days("unused", scope, estate=weekly) == ["2026-01-05", "2026-01-12"]
    assert neighbour_days(["2026-01-12"], weekly) == ["2026-01-05", "2026-01-19"]
    monthly = spec_with("monthly").estate
    assert neighbour_days(["2026-02-01"], monthly) == ["2026-01-01", "2026-03-01"]
    assert neighbour_days(["2026-01-02", "2026-01-03"]) == ["2026-01-01", "2026-01-04"]
