"""Ranges of partitions in one run: years of history without one run per day.

Before a range runs, three queries for the whole range sort its partitions: per table, the
monolith's version of every partition (`source.day_marks` over the range's window), the
checkpoints, and which partitions hold events already. A partition whose last completed
migration read the version it has now is complete and skipped; a partition with no rows and
no events is empty and only gets its completed checkpoint (written in one statement for all of
them, so the late-data sensor notices rows that arrive there later); the rest run one after
the other on one shared `Session` (connections, schema drift check and event types paid once),
each with its own checkpoint, run log row and result. A killed range resumes where it stopped:
finished partitions are complete, the interrupted one resumes from its checkpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb

from strangler.event_store._db import dumps
from strangler.migration import source
from strangler.migration.partition_run import (
    MIGRATION,
    PartitionMigration,
    PartitionResult,
    RunOptions,
    Session,
    source_session,
)
from strangler.spec import EstateSpec

log = logging.getLogger(__name__)

Outcome = Literal["migrated", "unchanged", "empty"]


@dataclass(frozen=True)
class RangePlan:
    """The partitions of a range, sorted by what they need."""

    to_run: list[str]
    unchanged: list[str]
    """Completed before, at the monolith's current version: nothing to do."""
    empty: list[str]
    """No rows in the monolith and no events in the store."""
    versions: dict[str, str] = field(default_factory=dict)
    """Per partition key: the monolith's version now ('' when empty)."""
    rows: dict[str, int] = field(default_factory=dict)
    """Per partition key: its rows in the monolith now."""


@dataclass
class PartitionOutcome:
    partition_key: str
    outcome: Outcome
    result: PartitionResult


def range_window(spec: EstateSpec, keys: Sequence[str]) -> source.Window:
    ordered = sorted(keys)
    return source.Window.spanning(
        source.Window.for_key(ordered[0], spec.estate),
        source.Window.for_key(ordered[-1], spec.estate),
    )


def current_marks(
    reader: psycopg.Connection[Any], spec: EstateSpec, keys: Sequence[str]
) -> dict[str, dict[str, source.DayMark]]:
    """Per partition key of the range: its mark per daily table (one query per table)."""
    window = range_window(spec, keys)
    marks: dict[str, dict[str, source.DayMark]] = {key: {} for key in keys}
    for aggregate in spec.daily:
        for key, mark in source.day_marks(reader, spec, aggregate, within=window).items():
            if key in marks:
                marks[key][aggregate.source.table] = mark
    return marks


def plan_range(
    conn: psycopg.Connection[Any],
    reader: psycopg.Connection[Any],
    spec: EstateSpec,
    keys: Sequence[str],
    *,
    rerun_complete: bool = False,
) -> RangePlan:
    """Sort the range's partitions: to run, unchanged since completed, or empty."""
    marks = current_marks(reader, spec, keys)
    reader.commit()
    versions = {key: source.partition_version(by_table) for key, by_table in marks.items()}
    rows = {key: sum(m.rows for m in by_table.values()) for key, by_table in marks.items()}
    checkpoints = {
        str(k): dict(p)
        for k, p in conn.execute(
            "SELECT partition_key, position FROM migration_state.migration_checkpoints"
            " WHERE migration = %s AND partition_key = ANY(%s)",
            (MIGRATION, list(keys)),
        )
    }
    with_events = {
        str(r[0])
        for r in conn.execute(
            "SELECT k FROM unnest(%s::text[]) AS k WHERE EXISTS"
            " (SELECT 1 FROM eventstore.events e WHERE e.partition_key = k)",
            (list(keys),),
        )
    }
    to_run: list[str] = []
    unchanged: list[str] = []
    empty: list[str] = []
    for key in keys:
        position = checkpoints.get(key)
        completed = position is not None and position.get("status") == "completed"
        if (
            completed
            and not rerun_complete
            and position is not None
            and (position.get("source_version") or "") == versions[key]
        ):
            unchanged.append(key)
        elif not versions[key] and key not in with_events and (position is None or completed):
            empty.append(key)
        else:
            to_run.append(key)
    return RangePlan(to_run, unchanged, empty, versions, rows)


def record_empty(conn: psycopg.Connection[Any], keys: Sequence[str], run_id: str) -> None:
    """Completed checkpoints for empty partitions, all in one statement."""
    if not keys:
        return
    position = Jsonb(
        {"table": "", "last_key": None, "counts": {}, "status": "completed", "source_version": ""},
        dumps=dumps,
    )
    conn.execute(
        "INSERT INTO migration_state.migration_checkpoints (migration, partition_key, position, run_id)"
        " SELECT %s, k, %s, %s FROM unnest(%s::text[]) AS k"
        " ON CONFLICT (migration, partition_key) DO UPDATE"
        " SET position = EXCLUDED.position, run_id = EXCLUDED.run_id, updated_at = now()",
        (MIGRATION, position, run_id, list(keys)),
    )


def partition_run_id(run_id: str, partition_key: str, keys: Sequence[str]) -> str:
    """A single partition keeps the run's id; in a range each partition has its own
    (`<run id>:<key>`), so its run log, metrics and checkpoint stay its own."""
    return run_id if len(keys) == 1 else f"{run_id}:{partition_key}"


def migrate_range(
    conninfo: str,
    keys: Sequence[str],
    *,
    spec: EstateSpec,
    source_conninfo: str | None = None,
    run_id: str,
    options: RunOptions | None = None,
    report: Callable[[str], None] | None = None,
    on_partition: Callable[[PartitionOutcome], None] | None = None,
    rerun_complete: bool = False,
    now: datetime | None = None,
) -> list[PartitionOutcome]:
    """Migrate the partitions `keys` (any order; run oldest first) in this process.

    One key alone runs exactly as a single-partition run always did (no skipping).
    """
    options = options or RunOptions()
    report = report or log.info
    monolith = source_conninfo or conninfo
    ordered = sorted(keys)
    outcomes: list[PartitionOutcome] = []

    def done(outcome: PartitionOutcome) -> None:
        outcomes.append(outcome)
        if on_partition:
            on_partition(outcome)

    if len(ordered) > 1:
        with (
            psycopg.connect(conninfo, autocommit=True) as conn,
            source_session(monolith) as reader,
        ):
            plan = plan_range(conn, reader, spec, ordered, rerun_complete=rerun_complete)
            if not options.dry_run:
                record_empty(conn, plan.empty, run_id)
        report(
            f"range {ordered[0]}..{ordered[-1]}: {len(plan.to_run)} to migrate,"
            f" {len(plan.unchanged)} unchanged since migrated, {len(plan.empty)} empty"
        )
    else:
        plan = RangePlan(ordered, [], [])
    skipped: dict[str, Outcome] = {k: "unchanged" for k in plan.unchanged}
    skipped.update({k: "empty" for k in plan.empty})
    with Session(conninfo, monolith, spec, options) as session:
        for key in ordered:
            if key in skipped:
                rows = plan.rows.get(key, 0)
                result = PartitionResult(key, run_id, options.dry_run, source_rows=rows)
                done(PartitionOutcome(key, skipped[key], result))
                continue
            result = PartitionMigration(
                conninfo,
                key,
                spec=spec,
                source_conninfo=monolith,
                run_id=partition_run_id(run_id, key, ordered),
                options=options,
                report=report,
                now=now,
            ).run(session)
            done(PartitionOutcome(key, "migrated", result))
    return outcomes


def relay_pending(
    conn: psycopg.Connection[Any], keys: Sequence[str], topics: Sequence[str]
) -> list[str]:
    """The partitions of a range that hold outbox rows of these topics not yet published
    (one index probe per key): the others have nothing to relay, so a range relays only them."""
    rows = conn.execute(
        "SELECT k FROM unnest(%s::text[]) AS k WHERE EXISTS (SELECT 1 FROM eventstore.outbox o"
        " WHERE o.partition_key = k AND o.topic = ANY(%s) AND o.published_at IS NULL)",
        (list(keys), list(topics)),
    ).fetchall()
    return sorted(str(r[0]) for r in rows)
