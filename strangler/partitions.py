"""The partitions of the estate, derived from the spec: UTC days, weeks or months of event time.

The first partition holds the spec's `estate.first_partition` (fixed, so the partition set
never shifts from one day to the next); the last is the current one (UTC), so today's rows can
be migrated while they arrive. `estate.partitions` chooses the length (daily by default); a
partition's key is always its first day (`2026-05-04` for the week starting Monday 4 May), the
same text the event store's `partition_key` column and the Kafka headers carry.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from strangler.settings import get_settings
from strangler.spec import EstateSpec, current_spec

MONDAY = 1
"""Dagster's `day_offset` of weekly partitions: 0 is Sunday; ours start on Monday (ISO weeks)."""


def build_partitions(spec: EstateSpec) -> dg.TimeWindowPartitionsDefinition:
    """The estate's partitions definition: daily, weekly (from Monday) or monthly, in UTC."""
    first = spec.estate.first_partition
    if first is None:
        raise ValueError(f"estate {spec.estate.name!r} has no daily aggregates, so no days")
    start = spec.estate.partition_start(first).isoformat()
    if spec.estate.partitions == "weekly":
        return dg.WeeklyPartitionsDefinition(
            start_date=start, day_offset=MONDAY, timezone="UTC", end_offset=1
        )
    if spec.estate.partitions == "monthly":
        return dg.MonthlyPartitionsDefinition(start_date=start, timezone="UTC", end_offset=1)
    return dg.DailyPartitionsDefinition(start_date=start, timezone="UTC", end_offset=1)


def range_backfill_policy() -> dg.BackfillPolicy:
    """Backfills run ranges of at most `STRANGLER_MAX_PARTITIONS_PER_RUN` partitions per run;
    the assets loop over the range's keys inside the run (`run_partition_keys`)."""
    return dg.BackfillPolicy.multi_run(max_partitions_per_run=get_settings().max_partitions_per_run)


def run_partition_keys(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
) -> list[str]:
    """The partition keys of this run, oldest first: one key, or every key of a range run."""
    return list(context.partition_keys)


def log_check_evaluations(
    context: dg.AssetCheckExecutionContext, evaluations: list[dg.AssetCheckEvaluation]
) -> None:
    """A range run's check results, each under its own partition.

    A check step of a range run has no partition key, so what it yields is recorded without
    one; evaluations logged with `partition=` keep every partition's own history instead (the
    step then yields nothing, which Dagster accepts for checks).
    """
    for evaluation in evaluations:
        # Dagster accepts check evaluations here at run time; its type hint predates them.
        context.op_execution_context.log_event(evaluation)  # type: ignore[arg-type]


build_daily_partitions = build_partitions
"""The builder's name before partitions could be weeks or months (kept for its callers)."""


def __getattr__(name: str) -> Any:
    """`daily_partitions`: the configured spec's partitions (days unless `estate.partitions`
    says weeks or months), built on first use rather than at import."""
    if name == "daily_partitions":
        return build_partitions(current_spec())
    raise AttributeError(name)
