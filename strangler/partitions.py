"""The partitions of the estate, derived from the spec: the UTC day of event time.

The first day is the spec's `estate.first_partition` (fixed, so the partition set never
shifts from one day to the next); the last is today (UTC), so today's rows can be
migrated while they arrive.
"""

from __future__ import annotations

import dagster as dg

from strangler.spec import EstateSpec, current_spec


def build_daily_partitions(spec: EstateSpec) -> dg.DailyPartitionsDefinition:
    first = spec.estate.first_partition
    if first is None:
        raise ValueError(f"estate {spec.estate.name!r} has no daily aggregates, so no days")
    return dg.DailyPartitionsDefinition(start_date=first.isoformat(), timezone="UTC", end_offset=1)


daily_partitions = build_daily_partitions(current_spec())
