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

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb

from strangler.event_store._db import dumps
from strangler.event_store.model import NewEvent
from strangler.migration import source
from strangler.migration.partition_run import (
    MIGRATION,
    PARTITION_COLUMN,
    PartitionMigration,
    PartitionResult,
    RunOptions,
    Session,
    source_session,
)
from strangler.migration.progress import Progress
from strangler.spec import EstateSpec
from strangler.spec.models import Aggregate

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
    with_events: set[str] = field(default_factory=set)
    """The partitions of the range that hold events already."""


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
    return RangePlan(to_run, unchanged, empty, versions, rows, with_events)


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


class RangeBatch(PartitionMigration):
    """Several partitions migrated as one unit: each table's rows of all of them in ONE read
    (the rows of a sparse day cost a few rows' work, not a run's fixed queries), every row's
    events and failures under its own partition (`PARTITION_COLUMN`), one checkpoint for the
    batch (keyset over the whole read, so a kill resumes it), and at the end, in one
    transaction, each partition's completed checkpoint at the version planned for it."""

    def __init__(
        self,
        conninfo: str,
        keys: Sequence[str],
        plan: RangePlan,
        *,
        spec: EstateSpec,
        source_conninfo: str,
        run_id: str,
        options: RunOptions,
        report: Callable[[str], None],
        now: datetime | None,
    ) -> None:
        self.keys = sorted(keys)
        self.plan = plan
        self.events_by_key: dict[str, int] = dict.fromkeys(self.keys, 0)
        digest = hashlib.sha1(",".join(self.keys).encode()).hexdigest()[:8]
        super().__init__(
            conninfo,
            f"{self.keys[0]}..{self.keys[-1]}#{digest}",
            spec=spec,
            source_conninfo=source_conninfo,
            run_id=run_id,
            options=options,
            report=report,
            now=now,
        )

    def _window(self) -> source.Window:
        estate = self.spec.estate
        return source.Window.spanning(
            source.Window.for_key(self.keys[0], estate),
            source.Window.for_key(self.keys[-1], estate),
            self.keys,
        )

    def _extended(self, aggregate: Aggregate, compiled: source.Extraction) -> source.Extraction:
        expression = source.DayFilter(self.spec).partition_of(aggregate, "t")
        return source.Extraction(
            [*compiled.expressions, (PARTITION_COLUMN, expression)], compiled.params
        )

    def _lock_partition(self, conn: psycopg.Connection[Any]) -> None:
        """Each partition of the batch, in key order (a single-partition run waits for it)."""
        conn.execute(
            "SELECT pg_advisory_lock(hashtextextended(%s || k, 0))"
            " FROM (SELECT k FROM unnest(%s::text[]) AS k ORDER BY k) AS ordered",
            (f"{MIGRATION}:", self.keys),
        )

    def _unlock_partition(self, conn: psycopg.Connection[Any]) -> None:
        if not conn.closed:
            conn.execute(
                "SELECT pg_advisory_unlock(hashtextextended(%s || k, 0))"
                " FROM unnest(%s::text[]) AS k",
                (f"{MIGRATION}:", self.keys),
            )

    def _appending(self, events: list[NewEvent]) -> None:
        for event in events:
            key = event.metadata.get("partition_day")
            if key in self.events_by_key:
                self.events_by_key[key] += 1

    def _delete_gone(self, table: Any, reader: Any, writer: Any, store: Any) -> None:
        """Deletes can only concern partitions that held events before this run."""
        for key in sorted(self.plan.with_events.intersection(self.keys)):
            table.builder.partition_key = key
            self.key, batch_key = key, self.key
            try:
                super()._delete_gone(table, reader, writer, store)
            finally:
                self.key = batch_key

    def _complete(
        self, control: psycopg.Connection[Any], writer: psycopg.Connection[Any], progress: Progress
    ) -> None:
        if not self.options.dry_run:
            with writer.transaction():
                writer.execute(
                    "DELETE FROM migration_state.migration_checkpoints"
                    " WHERE migration = %s AND partition_key = %s",
                    (MIGRATION, self.key),
                )
                writer.cursor().executemany(
                    "INSERT INTO migration_state.migration_checkpoints"
                    " (migration, partition_key, position, run_id) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT (migration, partition_key) DO UPDATE"
                    " SET position = EXCLUDED.position, run_id = EXCLUDED.run_id,"
                    " updated_at = now()",
                    [
                        (
                            MIGRATION,
                            key,
                            Jsonb(
                                {
                                    "table": self.tables[-1].name if self.tables else "",
                                    "last_key": None,
                                    "counts": {},
                                    "status": "completed",
                                    "source_version": self.plan.versions.get(key, ""),
                                },
                                dumps=dumps,
                            ),
                            self.run_id,
                        )
                        for key in self.keys
                    ],
                )
                # The batch's run row gives way to one finished row per partition: what ran
                # when, per partition, is what the rollback's "after T" scope, the run history
                # and the CLI's progress read.
                writer.execute(
                    "DELETE FROM migration_state.migration_runs WHERE run_id = %s",
                    (self.run_id,),
                )
                writer.cursor().executemany(
                    "INSERT INTO migration_state.migration_runs (run_id, migration, partition_key,"
                    " status, dry_run, code_version, total_items, processed_items, finished_at)"
                    " VALUES (%s, %s, %s, 'succeeded', false, %s, %s, %s, now())"
                    " ON CONFLICT (run_id) DO UPDATE SET status = 'succeeded',"
                    " total_items = EXCLUDED.total_items,"
                    " processed_items = EXCLUDED.processed_items, finished_at = now()",
                    [
                        (
                            f"{self.run_id}:{key}",
                            MIGRATION,
                            key,
                            self.options.code_version,
                            self.plan.rows.get(key, 0),
                            self.plan.rows.get(key, 0),
                        )
                        for key in self.keys
                    ],
                )
            writer.commit()
        self._finish_run(control, progress, status="succeeded")

    def results(self, conn: psycopg.Connection[Any]) -> dict[str, PartitionResult]:
        """Each partition's share of the batch: its rows, its failed rows (unresolved
        failed_entities, so a resumed batch counts what it did before the kill too)."""
        failed = {
            str(k): int(n)
            for k, n in conn.execute(
                "SELECT partition_key, count(DISTINCT (source_table, source_key))"
                " FROM migration_state.failed_entities WHERE migration = %s"
                " AND partition_key = ANY(%s) AND resolved_at IS NULL GROUP BY 1",
                (MIGRATION, self.keys),
            )
        }
        out = {}
        for key in self.keys:
            rows = self.plan.rows.get(key, 0)
            result = PartitionResult(key, self.run_id, self.options.dry_run, source_rows=rows)
            result.failed = failed.get(key, 0)
            result.migrated = rows - result.failed
            result.events_written = self.events_by_key[key]
            result.resumed_from = self.result.resumed_from
            result.duration_s = self.result.duration_s
            out[key] = result
        return out


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
    for key in ordered:
        if key in skipped:
            result = PartitionResult(
                key, run_id, options.dry_run, source_rows=plan.rows.get(key, 0)
            )
            done(PartitionOutcome(key, skipped[key], result))
    if len(plan.to_run) > 1 and not options.dry_run:
        batch = RangeBatch(
            conninfo,
            plan.to_run,
            plan,
            spec=spec,
            source_conninfo=monolith,
            run_id=run_id,
            options=options,
            report=report,
            now=now,
        )
        with Session(conninfo, monolith, spec, options) as session:
            batch.run(session)
            for key, result in batch.results(session.control).items():
                done(PartitionOutcome(key, "migrated", result))
    else:
        with Session(conninfo, monolith, spec, options) as session:
            for key in plan.to_run:
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
    outcomes.sort(key=lambda o: o.partition_key)
    return outcomes


def relay_pending(
    conn: psycopg.Connection[Any], keys: Sequence[str], topics: Sequence[str]
) -> list[str]:
    """The partitions of a range that hold outbox rows of these topics above their topic's
    published watermark (one index probe per key and topic): the others have nothing to
    relay, so a range relays only them."""
    rows = conn.execute(
        "SELECT k FROM unnest(%s::text[]) AS k WHERE EXISTS (SELECT 1 FROM unnest(%s::text[]) AS t"
        " WHERE EXISTS (SELECT 1 FROM eventstore.outbox o WHERE o.partition_key = k AND o.topic = t"
        " AND o.position > coalesce((SELECT p.last_position FROM migration_state.outbox_published p"
        " WHERE p.topic = t AND p.partition_key = k), 0)))",
        (list(keys), list(topics)),
    ).fetchall()
    return sorted(str(r[0]) for r in rows)
