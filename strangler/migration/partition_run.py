"""Migrate one partition of the monolith into the event store: validate, append, checkpoint.

The spec says which tables, in which order (parents first), and what their rows become.
Every batch is one transaction holding its events, their outbox rows, the failed rows and the
checkpoint (with the running counts), so a process killed at any point resumes exactly where
the last commit left it, and deterministic event ids make even a lost checkpoint harmless.
The monolith is only read: through its own connection, read-only, one repeatable-read
snapshot per table.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

import psycopg
from psycopg.types.json import Jsonb

from strangler.event_store._db import dumps
from strangler.event_store.copy_text import EncodedEvent
from strangler.event_store.errors import FieldError
from strangler.event_store.model import NewEvent
from strangler.event_store.registry import EventTypeRegistry, field_errors
from strangler.event_store.store import EventStore
from strangler.migration import drift, run_log, source
from strangler.migration.deletes import gone_rows, stored_states
from strangler.migration.drift import SchemaDriftError
from strangler.migration.events import EventBuilder, UnmappableValue, topic_for
from strangler.migration.folds import spec_folds
from strangler.migration.progress import Progress
from strangler.migration.rules import UNMAPPABLE_VALUE, Rule, Violation, extraction, violations
from strangler.migration.schemas import registry_entries, schemas_by_type
from strangler.spec import EstateSpec, current_spec
from strangler.spec.models import Aggregate

MIGRATION = "event_store"
PARTITION_COLUMN = "__partition_key"
"""The extraction column naming a row's partition when one read spans several (a range)."""
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
    deleted: int = 0
    events_written: int = 0
    events_existing: int = 0
    resumed_from: dict[str, Any] | None = None
    duration_s: float = 0.0
    per_table: dict[str, dict[str, int]] = field(default_factory=dict)
    failures_by_rule: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return (self.migrated + self.failed) / self.duration_s if self.duration_s else 0.0


class _SpecSchemas:
    """Dry run: validate against the spec's schemas without registering them."""

    def __init__(self, spec: EstateSpec) -> None:
        self.schemas = schemas_by_type(spec)

    def errors(self, event: NewEvent) -> list[FieldError]:
        schema = self.schemas.get(event.event_type)
        if schema is None:
            return [FieldError("event_type", "registered", f"no schema for {event.event_type}")]
        return field_errors(schema, event.payload)


class _SchemaSource(Protocol):
    def errors(self, event: NewEvent) -> list[FieldError]: ...


def _failed_payload(row: dict[str, Any]) -> Jsonb:
    return Jsonb({k: v for k, v in row.items() if not k.startswith("__")}, dumps=dumps)


def source_session(conninfo: str) -> psycopg.Connection[Any]:
    """A read-only, repeatable-read, UTC session on the monolith: it can never write there."""
    conn = psycopg.connect(conninfo, options="-c TimeZone=UTC")
    conn.read_only = True
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    return conn


Failure = tuple[dict[str, Any], list[Violation] | str]
Clean = tuple[dict[str, Any], list[NewEvent]]
Encoded = dict[uuid.UUID, EncodedEvent]
Prepared = tuple[list[dict[str, Any]], list[Clean], list[Failure], Encoded]
"""One batch read from the monolith: its rows, the clean ones with their events, the failed,
and the clean events' rows already encoded for the write (by event id)."""
READ_AHEAD = 2
"""Batches the reading thread may prepare ahead of the writing one (memory stays bounded)."""
_END = object()


@dataclass
class _Table:
    """One aggregate's part of the run: its compiled rules and event builder."""

    aggregate: Aggregate
    rules: list[Rule]
    extraction: source.Extraction
    builder: EventBuilder
    """Builds the rows' own events, on the reading thread."""
    changes: EventBuilder
    """Builds change events, on the writing thread (a builder is not shared between threads)."""

    @property
    def name(self) -> str:
        return self.aggregate.source.table


class Session:
    """The connections and once-per-run preparation (schema drift check, event types
    registered, the store) that every partition of one run shares: a range of partitions
    pays for them once, not once per partition."""

    def __init__(
        self, conninfo: str, source_conninfo: str, spec: EstateSpec, options: RunOptions
    ) -> None:
        self.conninfo = conninfo
        self.source_conninfo = source_conninfo
        self.spec = spec
        self.options = options
        self.drift: dict[str, tuple[drift.LiveColumns, drift.Drift]] | None = None
        self._prepared: tuple[_SchemaSource, EventStore] | None = None

    def __enter__(self) -> Session:
        self.control = psycopg.connect(self.conninfo, autocommit=True)
        self.writer = psycopg.connect(self.conninfo)
        self.reader = source_session(self.source_conninfo)
        return self

    def __exit__(self, *exc: object) -> None:
        for conn in (self.reader, self.writer, self.control):
            conn.close()

    def prepared(self, writer: psycopg.Connection[Any]) -> tuple[_SchemaSource, EventStore]:
        """The schemas to validate against (registered once, unless a dry run) and the store."""
        if self._prepared is None:
            registry: _SchemaSource = _SpecSchemas(self.spec)
            if not self.options.dry_run:
                db_registry = EventTypeRegistry(writer)
                db_registry.register_many(registry_entries(self.spec))
                writer.commit()
                registry = db_registry
            store = EventStore(
                writer,
                snapshot_every=self.options.snapshot_every,
                folds=spec_folds(self.spec),
                topic_for=topic_for(self.spec, self.options.topic_prefix),
            )
            self._prepared = (registry, store)
        return self._prepared


class PartitionMigration:
    """One run of one partition; `run()` is safe to repeat and to resume after a kill."""

    def __init__(
        self,
        conninfo: str,
        partition: date | str,
        *,
        spec: EstateSpec | None = None,
        source_conninfo: str | None = None,
        run_id: str | None = None,
        options: RunOptions | None = None,
        report: Callable[[str], None] | None = None,
        now: datetime | None = None,
    ) -> None:
        self.conninfo = conninfo
        self.source_conninfo = source_conninfo or conninfo
        self.spec = spec or current_spec()
        self.key = partition.isoformat() if isinstance(partition, date) else partition
        self.window = self._window()
        self.run_id = run_id or f"cli-{uuid.uuid4()}"
        self.options = options or RunOptions()
        self.report = report or log.info
        self.now = now or datetime.now(UTC)
        self.result = PartitionResult(self.key, self.run_id, self.options.dry_run)
        aggregates = self.spec.reference if self.window.is_reference else self.spec.daily
        self.tables = [self._table(a) for a in aggregates]

    def _window(self) -> source.Window:
        return source.Window.for_key(self.key, self.spec.estate)

    def _extended(self, aggregate: Aggregate, compiled: source.Extraction) -> source.Extraction:
        """The extraction as compiled (a range batch adds each row's partition)."""
        return compiled

    def _table(self, aggregate: Aggregate) -> _Table:
        compiled, rules = extraction(self.spec, aggregate, self.now)
        compiled = self._extended(aggregate, compiled)
        return _Table(
            aggregate,
            rules,
            compiled,
            EventBuilder(aggregate, self.key, self.now),
            EventBuilder(aggregate, self.key, self.now),
        )

    # -- the run ---------------------------------------------------------------------------

    def run(self, session: Session | None = None) -> PartitionResult:
        """Migrate the partition; inside a range run, on the range's shared `session`."""
        if session is not None:
            return self._run(session)
        with Session(self.conninfo, self.source_conninfo, self.spec, self.options) as own:
            return self._run(own)

    def _run(self, session: Session) -> PartitionResult:
        started = time.monotonic()
        control, writer, reader = session.control, session.writer, session.reader
        self._lock_partition(control)
        try:
            if session.drift is None:
                session.drift = self._check_schema(reader, control)
            self._drift = session.drift
            registry, store = session.prepared(writer)
            position = self._resume_position(control)
            self._running_counts: dict[str, dict[str, int]] = {
                k: dict(v) for k, v in position.get("counts", {}).items()
            }
            marks = {
                t.name: source.window_mark(reader, self.spec, t.aggregate, self.window)
                for t in self.tables
            }
            reader.commit()
            self.source_version = source.partition_version(marks)
            self.result.source_rows = sum(m.rows for m in marks.values())
            progress = Progress(total=self.result.source_rows)
            self._start_run(control)
            try:
                for index, table in enumerate(self.tables):
                    self._migrate_table(
                        index, table, position, reader, writer, store, registry, progress
                    )
                    reader.commit()
                    if not self.options.dry_run:
                        self._delete_gone(table, reader, writer, store)
                        reader.commit()
                    self._record_added(control, table)
            except BaseException as exc:
                self._finish_run(control, progress, status="failed", error=repr(exc))
                raise
            self.result.duration_s = time.monotonic() - started
            self._complete(control, writer, progress)
        finally:
            self._unlock_partition(control)
        progress.maybe_report(self.report, force=True)
        return self.result

    def _migrate_table(
        self,
        index: int,
        table: _Table,
        position: dict[str, Any],
        reader: psycopg.Connection[Any],
        writer: psycopg.Connection[Any],
        store: EventStore,
        registry: _SchemaSource,
        progress: Progress,
    ) -> None:
        names = [t.name for t in self.tables]
        done_index = names.index(position["table"]) if position.get("table") in names else -1
        stats = self.result.per_table.setdefault(
            table.name, {"rows": 0, "migrated": 0, "failed": 0}
        )
        counts: dict[str, dict[str, int]] = position.get("counts", {})
        if index <= done_index:
            self._count_already_done(table.name, counts.get(table.name, {}), stats, progress)
            if index < done_index:
                return
        after = position.get("last_key") if index == done_index else None
        fixable = not self.options.dry_run and _has_unresolved(writer, table.name)
        batch_no = 0
        for rows, clean, failed, encoded in self._read_ahead(table, reader, store, registry, after):
            t0 = time.monotonic()
            if not self.options.dry_run:
                clean = self._with_changes(table, writer, clean)
            events = [e for _, evs in clean for e in evs]
            with writer.transaction():
                written = existing = 0
                if not self.options.dry_run:
                    versioned = _renumber(
                        writer, [encoded.get(e.event_id) or store.encode(e) for e in events]
                    )
                    self._appending([x.event for x in versioned])
                    outcome = store.append_batch(versioned)
                    written, existing = (
                        outcome.appended,
                        outcome.duplicates + (len(events) - len(versioned)),
                    )
                    self._record_failures(writer, table.name, failed)
                    if fixable:
                        self._resolve_fixed(writer, table, [row for row, _ in clean])
                    running = self._running_counts.setdefault(table.name, {"rows": 0, "failed": 0})
                    running["rows"] += len(rows)
                    running["failed"] += len(failed)
                    last = source.row_key(table.aggregate, rows[-1])
                    self._checkpoint(writer, table.name, last, self._running_counts)
                    self._metrics(
                        writer, batch_no, len(rows), written, len(failed), time.monotonic() - t0
                    )
            self._tally(stats, progress, clean, failed, written, existing)
            batch_no += 1
            self._update_run(writer, progress)
            writer.commit()
            progress.maybe_report(self.report)

    # -- rows -> events ----------------------------------------------------------------------

    def _read_ahead(
        self,
        table: _Table,
        reader: psycopg.Connection[Any],
        store: EventStore,
        registry: _SchemaSource,
        after: Sequence[Any] | None,
    ) -> Iterator[Prepared]:
        """The table's batches in key order, read from the monolith, turned into events and
        encoded for COPY by a second thread while this one writes the previous batch: the
        monolith's query and the Python work per row overlap the estate's writes instead of
        adding to them. The reading thread owns `reader` and `table.builder` until the table
        is done."""
        prepared: queue.Queue[Prepared | BaseException | object] = queue.Queue(READ_AHEAD)
        stop = threading.Event()

        def hand_over(item: Prepared | BaseException | object) -> bool:
            while not stop.is_set():
                try:
                    prepared.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def read() -> None:
            try:
                for rows in source.stream_rows(
                    reader,
                    self.spec,
                    table.aggregate,
                    self.window,
                    table.extraction,
                    after=after,
                    batch_size=self.options.batch_size,
                ):
                    clean, failed = self._split(table, rows, registry)
                    encoded = {} if self.options.dry_run else _encoded(store, clean)
                    if not hand_over((rows, clean, failed, encoded)):
                        return
                hand_over(_END)
            except BaseException as exc:  # handed to the writing thread, which raises it
                hand_over(exc)

        thread = threading.Thread(target=read, name=f"strangler-read-{table.name}", daemon=True)
        thread.start()
        try:
            while (item := prepared.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                yield item  # type: ignore[misc]
        finally:
            stop.set()
            thread.join()

    def _split(
        self, table: _Table, rows: Sequence[dict[str, Any]], registry: _SchemaSource
    ) -> tuple[list[Clean], list[Failure]]:
        clean: list[Clean] = []
        failed: list[Failure] = []
        for row in rows:
            if PARTITION_COLUMN in row:  # a range read: the row's events carry its partition
                table.builder.partition_key = row[PARTITION_COLUMN]
            broken = violations(table.rules, row)
            if broken:
                failed.append((row, broken))
                continue
            try:
                events = table.builder.row_events(row)
            except UnmappableValue as exc:
                failed.append((row, [Violation(UNMAPPABLE_VALUE, exc.column, str(exc))]))
                continue
            schema_errors = [str(err) for e in events for err in registry.errors(e)]
            if schema_errors:
                failed.append((row, "; ".join(schema_errors)))
                continue
            clean.append((row, events))
        return clean, failed

    def _with_changes(
        self, table: _Table, conn: psycopg.Connection[Any], clean: list[Clean]
    ) -> list[Clean]:
        """Add a change event to each migrated row whose stored state is no longer current."""
        aggregate = table.aggregate
        if not aggregate.events.change.enabled or not clean:
            return clean
        ids = [source.aggregate_id(aggregate, row) for row, _ in clean]
        states = stored_states(conn, aggregate, ids)
        out: list[Clean] = []
        for (row, events), row_id in zip(clean, ids, strict=True):
            stored = states.get(row_id)
            if PARTITION_COLUMN in row:  # a range read: the change belongs to the row's partition
                table.changes.partition_key = row[PARTITION_COLUMN]
            change = table.changes.change_event(row, stored) if stored is not None else None
            out.append((row, [*events, change] if change is not None else events))
        return out

    def _delete_gone(
        self,
        table: _Table,
        reader: psycopg.Connection[Any],
        writer: psycopg.Connection[Any],
        store: EventStore,
    ) -> None:
        """Rows of this partition that vanished from the monolith become delete events."""
        aggregate = table.aggregate
        if not aggregate.events.delete.enabled:
            return
        for batch in gone_rows(writer, reader, aggregate, self.key, self.options.batch_size):
            events = [
                table.builder.delete_event(row_id, None, stream_id=stream)
                for row_id, stream in batch
            ]
            with writer.transaction():
                outcome = store.append_batch(_renumber(writer, [store.encode(e) for e in events]))
            writer.commit()
            self.result.deleted += outcome.appended
            self.result.events_written += outcome.appended

    # -- bookkeeping -------------------------------------------------------------------------

    def _appending(self, events: list[NewEvent]) -> None:
        """Events about to be appended (a range batch counts them per partition)."""

    def _tally(
        self,
        stats: dict[str, int],
        progress: Progress,
        clean: list[Clean],
        failed: list[Failure],
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
            rules = [v.rule for v in why] if isinstance(why, list) else ["schema"]
            for rule in dict.fromkeys(rules):
                self.result.failures_by_rule[rule] = self.result.failures_by_rule.get(rule, 0) + 1
        progress.processed += len(clean)
        progress.failed += len(failed)
        progress.events += written

    def _count_already_done(
        self, table: str, counts: dict[str, int], stats: dict[str, int], progress: Progress
    ) -> None:
        """Rows a killed earlier run already handled (from its checkpoint): counted, not redone."""
        total, failed = int(counts.get("rows", 0)), int(counts.get("failed", 0))
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

    def _unlock_partition(self, conn: psycopg.Connection[Any]) -> None:
        """Released when the partition is done: a range run's session goes on to other keys."""
        if not conn.closed:
            conn.execute(
                "SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (f"{MIGRATION}:{self.key}",)
            )

    def _check_schema(
        self, reader: psycopg.Connection[Any], control: psycopg.Connection[Any]
    ) -> dict[str, tuple[drift.LiveColumns, drift.Drift]]:
        """Refuse to run on dropped or retyped columns (events would silently lose them).

        Every table is compared before anything is written; a table without a baseline gets
        one (not in dry runs). Added columns only warn; `_record_added` records them later.
        """
        found: dict[str, tuple[drift.LiveColumns, drift.Drift]] = {}
        unrecorded: dict[str, drift.LiveColumns] = {}
        for table in self.tables:
            live = drift.read_live(reader, table.aggregate)
            name = drift.baseline_table(table.aggregate)
            recorded = drift.recorded_columns(control, name)
            if recorded:
                compared = drift.compare(table.aggregate, recorded, live.types, enums=live.enums)
                found[table.name] = (live, compared)
            else:
                unrecorded[name] = live
        blocking = [d for _, d in found.values() if d.blocking]
        if blocking:
            raise SchemaDriftError(blocking)
        for _, compared in found.values():
            for finding in compared.findings:
                self.report(f"schema drift (warning): {finding.message}")
        if not self.options.dry_run:
            for name, live in unrecorded.items():
                drift.record_columns(control, name, live.types)
        return found

    def _record_added(self, control: psycopg.Connection[Any], table: _Table) -> None:
        """Once a table is migrated, its added columns join the baseline (not in dry runs)."""
        if self.options.dry_run or table.name not in self._drift:
            return
        live, compared = self._drift[table.name]
        if compared.added:
            added = {c: live.types[c] for c in compared.added}
            drift.record_columns(control, drift.baseline_table(table.aggregate), added)

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
        if "counts" not in row[0]:
            self.report(
                f"{self.key}: checkpoint of an older version (no running counts); reading the"
                " partition from the start instead (ids make that idempotent)"
            )
            return {}
        self.result.resumed_from = dict(row[0])
        self.report(f"resuming {self.key} after {row[0].get('table')} key {row[0].get('last_key')}")
        return dict(row[0])

    def _checkpoint(
        self,
        conn: psycopg.Connection[Any],
        table: str,
        last_key: list[Any] | None,
        counts: dict[str, dict[str, int]],
        status: str = "running",
        source_version: str | None = None,
    ) -> None:
        conn.execute(
            "INSERT INTO migration_state.migration_checkpoints (migration, partition_key, position, run_id)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (migration, partition_key) DO UPDATE"
            " SET position = EXCLUDED.position, run_id = EXCLUDED.run_id, updated_at = now()",
            (
                MIGRATION,
                self.key,
                Jsonb(
                    {
                        "table": table,
                        "last_key": last_key,
                        "counts": counts,
                        "status": status,
                        "source_version": source_version,
                    },
                    dumps=dumps,
                ),
                self.run_id,
            ),
        )

    def _record_failures(
        self,
        conn: psycopg.Connection[Any],
        table: str,
        failed: list[Failure],
    ) -> None:
        aggregate = self.spec.by_table(table)
        params = []
        for row, why in failed:
            items = [(v.rule, str(v)) for v in why] if isinstance(why, list) else [("schema", why)]
            for rule, reason in items:
                params.append(
                    (
                        MIGRATION,
                        row.get(PARTITION_COLUMN, self.key),
                        table,
                        source.aggregate_id(aggregate, row),
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
        self, conn: psycopg.Connection[Any], table: _Table, rows: list[dict[str, Any]]
    ) -> None:
        """A row that failed before and is clean now (fixed at the source) is no longer failed."""
        if rows:
            conn.execute(
                "UPDATE migration_state.failed_entities SET resolved_at = now()"
                " WHERE migration = %s AND source_table = %s AND source_key = ANY(%s) AND resolved_at IS NULL",
                (MIGRATION, table.name, [source.aggregate_id(table.aggregate, r) for r in rows]),
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
                last = self.tables[-1].name if self.tables else ""
                self._checkpoint(
                    writer, last, None, {}, status="completed", source_version=self.source_version
                )
            writer.commit()
        self._finish_run(control, progress, status="succeeded")


def _has_unresolved(conn: psycopg.Connection[Any], table: str) -> bool:
    """Whether any row of `table` is failed and unresolved: only then can a clean row of this
    run resolve one (rows failing in this run are not read again in it)."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM migration_state.failed_entities"
        " WHERE migration = %s AND source_table = %s AND resolved_at IS NULL)",
        (MIGRATION, table),
    ).fetchone()
    conn.commit()
    return bool(row and row[0])


def _encoded(store: EventStore, clean: list[Clean]) -> Encoded:
    return {e.event_id: store.encode(e) for _, events in clean for e in events}


_STORED_STREAMS = """
SELECT k.t, k.i, s.top, s.ids
FROM unnest(%s::text[], %s::text[]) AS k(t, i)
CROSS JOIN LATERAL (
    SELECT max(e.aggregate_version) AS top, array_agg(e.event_id) AS ids
    FROM eventstore.events e WHERE e.aggregate_type = k.t AND e.aggregate_id = k.i) s
WHERE s.top IS NOT NULL
"""
"""Per stream of a batch, its stored version and event ids: one index probe per stream, so the
cost follows the batch, never the size of the event store (a join let the planner scan it)."""


def _renumber(conn: psycopg.Connection[Any], events: list[EncodedEvent]) -> list[EncodedEvent]:
    """Drop events already stored and number the rest after each stream's current version.

    A first run numbers 1..n; a late edit's new event follows whatever the stream holds.
    """
    if not events:
        return []
    keys = list(dict.fromkeys((x.event.aggregate_type, x.event.aggregate_id) for x in events))
    rows = conn.execute(_STORED_STREAMS, ([k[0] for k in keys], [k[1] for k in keys])).fetchall()
    # Per stream: the last version numbered, starting from the stored one.
    next_version = {(r[0], r[1]): int(r[2]) for r in rows}
    stored = {eid for r in rows for eid in r[3]}
    out: list[EncodedEvent] = []
    for x in events:
        e = x.event
        if e.event_id in stored:
            continue
        stream = (e.aggregate_type, e.aggregate_id)
        version = next_version[stream] = next_version.get(stream, 0) + 1
        out.append(x.numbered(version))
    return out
