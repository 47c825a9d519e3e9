"""The one partitioning of the estate: day of event time (UTC), shared by every asset."""

from __future__ import annotations

import os
from datetime import date, timedelta

import dagster as dg


def _first_day() -> str:
    """Sample data covers recent days; production sets STRANGLER_FIRST_DAY to the monolith's first."""
    configured = os.environ.get("STRANGLER_FIRST_DAY")
    if configured:
        return configured
    return (date.today() - timedelta(days=60)).isoformat()


daily_partitions = dg.DailyPartitionsDefinition(
    start_date=_first_day(), timezone="UTC", end_offset=1
)
