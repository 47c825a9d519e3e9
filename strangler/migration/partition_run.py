"""Migrate one day of the monolith into the event store: validate, append, checkpoint.

Every batch is one transaction holding its events, their outbox rows, the failed rows and the
checkpoint, so a process killed at any point resumes exactly where the last commit left it,
and deterministic event ids make even a lost checkpoint harmless.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

import psycopg
from psycopg.types.json import Jsonb

from strangler.event_store._db import dumps
from strangler.event_store.errors import FieldError
from strangler.event_store.model import NewEvent
from strangler.event_store.registry import EventTypeRegistry, field_errors
from strangler.event_store.store import EventStore
from strangler.migration import run_log, source
from strangler.migration.events import row_events, topic_for
from strangler.migration.progress import Progress
from strangler.migration.rules import Violation, violations
from strangler.migration.schemas import EVENT_SCHEMAS, registry_entries

MIGRATION = "event_store"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    batch_size: int = 2_000
    checkpoint_every: int = 1
    """Batches per transaction: a checkpoint is written with every commit."""
    dry_run: bool = False
    code_version: str = "1"
    topic_prefix: str = ""
    snapshot_every: int = 50


@dataclass
class PartitionResult:
    partition_key: str
    run_id: str
    dry_run: bool
    source_rows: int = 0
    migrated: int = 0
    failed: int = 0
    skipped: int = 0
    events_written: int = 0
    events_existing: int = 0
    resumed_from: dict[str, Any] | None = None
    duration_s: float = 0.0
    per_table: dict[str, dict[str, int]] = field(default_factory=dict)
    failures_by_rule: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return (self.migrated + self.failed) / self.duration_s if self.duration_s else 0.0


class _CodeSchemas:
    """Dry run: validate against the schemas in code without registering them."""

    def errors(self, event: NewEvent) -> list[FieldError]:
        schema = EVENT_SCHEMAS.get(event.event_type)
        if schema is None:
            return [FieldError("event_type", "registered", f"no schema for {event.event_type}")]
        return field_errors(schema, event.payload)


class _SchemaSource(Protocol):
    def errors(self, event: NewEvent) -> list[FieldError]: ...


def _failed_payload(row: dict[str, Any]) -> Jsonb:
    return Jsonb(row, dumps=dumps)


class PartitionMigration:
    """One run of one partition; `run()` is safe to repeat and to resume after a kill."""

    def __init__(
        self,
        conninfo: str,
        partition_day: date,
        *,
        run_id: str | None = None,
        options: RunOptions | None = None,
        report: Callable[[str], None] | None = None,
        now: datetime | None = None,
    ) -> None:
        self.conninfo = conninfo
        self.day = partition_day
        self.key = partition_day.isoformat()
        self.run_id = run_id or f"cli-{uuid.uuid4()}"
        self.options = options or RunOptions()
        self.report = report or log.info
        self.now = now or datetime.now(UTC)
        self.result = PartitionResult(self.key, self.run_id, self.options.dry_run)

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> PartitionResult:
        started = time.monotonic()
        with (
            psycopg.connect(self.conninfo, autocommit=True) as control,
            psycopg.connect(self.conninfo) as writer,
            psycopg.connect(self.conninfo) as reader,
        ):
            self._lock_partition(control)
            registry: _SchemaSource = _CodeSchemas()
            if not self.options.dry_run:
                db_registry = EventTypeRegistry(writer)
                db_registry.register_many(registry_entries())
                writer.commit()
                registry = db_registry
            store = EventStore(
                writer,
                snapshot_every=self.options.snapshot_every,
                topic_for=lambda e: topic_for(e, self.options.topic_prefix),
            )
            position = self._resume_position(control)
            totals = {t: source.count_rows(control, t, self.day) for t in source.TABLES}
            self.result.source_rows = sum(totals.values())
            progress = Progress(total=self.result.source_rows)
            self._start_run(control)
            try:
                for table in source.TABLES:
                    self._migrate_table(table, position, reader, writer, store, registry, progress)
                    reader.commit()
            except BaseException as exc:
                self._finish_run(control, progress, status="failed", error=repr(exc))
                raise
            self.result.duration_s = time.monotonic() - started
            self._complete(control, writer, progress)
        progress.maybe_report(self.report, force=True)
        return self.result

    def _migrate_table(
        self,
        table: str,
        position: dict[str, Any],
        reader: psycopg.Connection[Any],
        writer: psycopg.Connection[Any],
        store: EventStore,
        registry: _SchemaSource,
        progress: Progress,
    ) -> None:
        order = source.TABLES.index(table)
        done_order = source.TABLES.index(position["table"]) if position.get("table") else -1
        stats = self.result.per_table.setdefault(table, {"rows": 0, "migrated": 0, "failed": 0})
        if order < done_order:
            self._count_already_done(writer, table, stats, progress)
            return
        after_id = int(position.get("last_id", 0)) if order == done_order else 0
        if after_id:
            self._count_already_done(writer, table, stats, progress, up_to_id=after_id)
        batch_no = 0
        for rows in source.stream_rows(
            reader, table, self.day, after_id=after_id, batch_size=self.options.batch_size
        ):
            t0 = time.monotonic()
            clean, failed = self._split(table, rows, registry)
            events = [e for _, evs in clean for e in evs]
            with writer.transaction():
                written = existing = 0
                if not self.options.dry_run:
                    versioned = _renumber(writer, events)
                    outcome = store.append_batch(versioned)
                    written, existing = (
                        outcome.appended,
                        outcome.duplicates + (len(events) - len(versioned)),
                    )
                    self._record_failures(writer, table, failed)
                    self._resolve_fixed(writer, table, [row for row, _ in clean])
                    self._checkpoint(writer, table, int(rows[-1]["id"]))
                    self._metrics(
                        writer, batch_no, len(rows), written, len(failed), time.monotonic() - t0
                    )
            self._tally(table, stats, progress, clean, failed, written, existing)
            batch_no += 1
            self._update_run(writer, progress)
            writer.commit()
            progress.maybe_report(self.report)

    # -- rows -> events ----------------------------------------------------------------------

    def _split(
        self, table: str, rows: Sequence[dict[str, Any]], registry: _SchemaSource
    ) -> tuple[
        list[tuple[dict[str, Any], list[NewEvent]]],
        list[tuple[dict[str, Any], list[Violation] | str]],
    ]:
        clean: list[tuple[dict[str, Any], list[NewEvent]]] = []
        failed: list[tuple[dict[str, Any], list[Violation] | str]] = []
        for row in rows:
            broken = violations(table, row, self.now)
            if broken:
                failed.append((row, broken))
                continue
            events = row_events(table, row, self.day)
            schema_errors = [str(err) for e in events for err in registry.errors(e)]
            if schema_errors:
                failed.append((row, "; ".join(schema_errors)))
                continue
            clean.append((row, events))
        return clean, failed

    # -- bookkeeping -------------------------------------------------------------------------

    def _tally(
        self,
        table: str,
        stats: dict[str, int],
        progress: Progress,
        clean: list[tuple[dict[str, Any], list[NewEvent]]],
        failed: list[tuple[dict[str, Any], list[Violation] | str]],
        written: int,
        existing: int,
    ) -> None:
        stats["rows"] += len(clean) + len(failed)
        stats["migrated"] += len(clean)
        stats["failed"] += len(failed)
        self.result.migrated += len(clean)
        self.result.failed += len(failed)
        self.result.events_written += written
        self.result.events_existing += existing
        if not self.options.dry_run and written == 0 and clean:
            self.result.skipped += len(clean)
        for _, why in failed:
            rules = [v.rule.value for v in why] if isinstance(why, list) else ["schema"]
            for rule in dict.fromkeys(rules):
                self.result.failures_by_rule[rule] = self.result.failures_by_rule.get(rule, 0) + 1
        progress.processed += len(clean)
        progress.failed += len(failed)
        progress.events += written

    def _count_already_done(
        self,
        conn: psycopg.Connection[Any],
        table: str,
        stats: dict[str, int],
        progress: Progress,
        up_to_id: int | None = None,
    ) -> None:
        """Rows a killed earlier run already handled: counted, not redone."""
        start, end = source.day_bounds(self.day)
        bound = up_to_id if up_to_id is not None else 2**62
        total_row = conn.execute(
            psycopg.sql.SQL(
                "SELECT count(*) FROM {}.{} WHERE created_at >= %s AND created_at < %s AND id <= %s"
            ).format(psycopg.sql.Identifier(source.SCHEMA), psycopg.sql.Identifier(table)),
            (start, end, bound),
        ).fetchone()
        failed_row = conn.execute(
            "SELECT count(DISTINCT source_key) FROM migration_state.failed_entities"
            " WHERE migration = %s AND partition_key = %s AND source_table = %s"
            " AND resolved_at IS NULL AND source_key::bigint <= %s",
            (MIGRATION, self.key, table, bound),
        ).fetchone()
        total = int(total_row[0]) if total_row else 0
        failed = int(failed_row[0]) if failed_row else 0
        stats["rows"] += total
        stats["migrated"] += total - failed
        stats["failed"] += failed
        self.result.migrated += total - failed
        self.result.failed += failed
        progress.processed += total - failed
        progress.failed += failed

    def _lock_partition(self, conn: psycopg.Connection[Any]) -> None:
        """One run per partition at a time; a second one waits (session-level advisory lock)."""
        conn.execute(
            "SELECT pg_advisory_lock(hashtextextended(%s, 0))", (f"{MIGRATION}:{self.key}",)
        )

    def _resume_position(self, conn: psycopg.Connection[Any]) -> dict[str, Any]:
        if self.options.dry_run:
            return {}
        row = conn.execute(
            "SELECT position FROM migration_state.migration_checkpoints"
            " WHERE migration = %s AND partition_key = %s",
            (MIGRATION, self.key),
        ).fetchone()
        if row is None or row[0].get("status") == "completed":
            return {}
        self.result.resumed_from = dict(row[0])
        self.report(f"resuming {self.key} after {row[0].get('table')} id {row[0].get('last_id')}")
        return dict(row[0])

    def _checkpoint(
        self, conn: psycopg.Connection[Any], table: str, last_id: int, status: str = "running"
    ) -> None:
        conn.execute(
            "INSERT INTO migration_state.migration_checkpoints (migration, partition_key, position, run_id)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (migration, partition_key) DO UPDATE"
            " SET position = EXCLUDED.position, run_id = EXCLUDED.run_id, updated_at = now()",
            (
                MIGRATION,
                self.key,
                Jsonb({"table": table, "last_id": last_id, "status": status}),
                self.run_id,
            ),
        )

    def _record_failures(
        self,
        conn: psycopg.Connection[Any],
        table: str,
        failed: list[tuple[dict[str, Any], list[Violation] | str]],
    ) -> None:
        params = []
        for row, why in failed:
            items = (
                [(v.rule.value, str(v)) for v in why]
                if isinstance(why, list)
                else [("schema", why)]
            )
            for rule, reason in items:
                params.append(
                    (
                        MIGRATION,
                        self.key,
                        table,
                        str(row["id"]),
                        rule,
                        reason,
                        _failed_payload(row),
                        self.run_id,
                    )
                )
        if params:
            conn.cursor().executemany(
                "INSERT INTO migration_state.failed_entities"
                " (migration, partition_key, source_table, source_key, rule, reason, payload, run_id)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (migration, source_table, source_key, rule) DO UPDATE SET"
                " reason = EXCLUDED.reason, payload = EXCLUDED.payload, run_id = EXCLUDED.run_id,"
                " partition_key = EXCLUDED.partition_key,"
                " occurrences = failed_entities.occurrences + 1, last_seen_at = now(), resolved_at = NULL",
                params,
            )

    def _resolve_fixed(
        self, conn: psycopg.Connection[Any], table: str, rows: list[dict[str, Any]]
    ) -> None:
        """A row that failed before and is clean now (fixed at the source) is no longer failed."""
        if rows:
            conn.execute(
                "UPDATE migration_state.failed_entities SET resolved_at = now()"
                " WHERE migration = %s AND source_table = %s AND source_key = ANY(%s) AND resolved_at IS NULL",
                (MIGRATION, table, [str(r["id"]) for r in rows]),
            )

    def _metrics(
        self,
        conn: psycopg.Connection[Any],
        batch_no: int,
        rows: int,
        written: int,
        failed: int,
        seconds: float,
    ) -> None:
        conn.execute(
            "INSERT INTO migration_state.migration_metrics"
            " (run_id, batch_no, migration, partition_key, rows_read, events_written, failed, duration_ms)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (run_id, batch_no) DO UPDATE SET rows_read = migration_metrics.rows_read + EXCLUDED.rows_read,"
            " events_written = migration_metrics.events_written + EXCLUDED.events_written,"
            " failed = migration_metrics.failed + EXCLUDED.failed,"
            " duration_ms = migration_metrics.duration_ms + EXCLUDED.duration_ms",
            (self.run_id, batch_no, MIGRATION, self.key, rows, written, failed, seconds * 1000),
        )

    def _start_run(self, conn: psycopg.Connection[Any]) -> None:
        run_log.start_run(
            conn,
            self.run_id,
            MIGRATION,
            self.key,
            dry_run=self.options.dry_run,
            code_version=self.options.code_version,
            total=self.result.source_rows,
        )

    def _update_run(self, conn: psycopg.Connection[Any], progress: Progress) -> None:
        run_log.update_run(
            conn,
            self.run_id,
            processed=progress.processed,
            failed=progress.failed,
            rate=progress.rate,
            eta=progress.eta,
        )

    def _finish_run(
        self,
        conn: psycopg.Connection[Any],
        progress: Progress,
        *,
        status: str,
        error: str | None = None,
    ) -> None:
        run_log.finish_run(
            conn,
            self.run_id,
            status=status,
            processed=progress.processed,
            failed=progress.failed,
            rate=progress.rate,
            error=error,
        )

    def _complete(
        self, control: psycopg.Connection[Any], writer: psycopg.Connection[Any], progress: Progress
    ) -> None:
        if not self.options.dry_run:
            with writer.transaction():
                self._checkpoint(writer, source.TABLES[-1], 0, status="completed")
            writer.commit()
        self._finish_run(control, progress, status="succeeded")


def _renumber(conn: psycopg.Connection[Any], events: list[NewEvent]) -> list[NewEvent]:
    """Drop events already stored and number the rest after each stream's current version.

    A first run numbers 1..n; a late edit's new event follows whatever the stream holds.
    """
    if not events:
        return []
    keys = sorted({(e.aggregate_type, e.aggregate_id) for e in events})
    rows = conn.execute(
        "SELECT e.aggregate_type, e.aggregate_id, max(e.aggregate_version),"
        " array_agg(e.event_id) FROM eventstore.events e"
        " JOIN unnest(%s::text[], %s::text[]) AS k(t, i) ON e.aggregate_type = k.t AND e.aggregate_id = k.i"
        " GROUP BY 1, 2",
        ([k[0] for k in keys], [k[1] for k in keys]),
    ).fetchall()
    current = {(r[0], r[1]): int(r[2]) for r in rows}
    stored = {eid for r in rows for eid in r[3]}
    next_version: dict[tuple[str, str], int] = defaultdict(int)
    out: list[NewEvent] = []
    for event in events:
        if event.event_id in stored:
            continue
        stream = (event.aggregate_type, event.aggregate_id)
        next_version[stream] = max(next_version[stream], current.get(stream, 0)) + 1
        out.append(dataclasses.replace(event, aggregate_version=next_version[stream]))
    return out
