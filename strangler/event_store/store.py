"""Append events (with their outbox rows, atomically) and load aggregates from snapshots.

Contract, in the spirit of message-db:

* ``append`` writes one aggregate's events. With ``expected_version`` it fails with
  :class:`ConcurrencyError` unless the stream is at exactly that version; a per-stream advisory
  lock makes the check and the insert one step.
* Event ids are the idempotency key: appending ids that are already stored is a no-op.
* Every event gets its outbox row (topic, key = aggregate id, headers) in the same transaction.
* ``append_batch`` writes many aggregates' events in one transaction through COPY, for the
  migration; same idempotency, same outbox rule.
* Each writer transaction claims its transaction id before taking positions, which the global
  reader (:mod:`strangler.event_store.reader`) depends on.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from strangler.event_store._db import (
    EVENT_COLUMNS,
    Source,
    connection,
    jsonb,
    recorded_event,
)
from strangler.event_store.errors import ConcurrencyError, EventStoreError
from strangler.event_store.folds import DEFAULT_FOLDS, Fold, State
from strangler.event_store.model import NewEvent, RecordedEvent

SNAPSHOT_EVERY = 50
TopicFor = Callable[[NewEvent], str]

_BATCH_COLUMNS = (
    "ord",
    "event_id",
    "aggregate_type",
    "aggregate_id",
    "aggregate_version",
    "event_type",
    "schema_version",
    "payload",
    "metadata",
    "occurred_at",
    "occurred_text",
    "topic",
)

_CREATE_BATCH_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS eventstore_batch (
    ord               integer     NOT NULL,
    event_id          uuid        NOT NULL,
    aggregate_type    text        NOT NULL,
    aggregate_id      text        NOT NULL,
    aggregate_version integer     NOT NULL,
    event_type        text        NOT NULL,
    schema_version    integer     NOT NULL,
    payload           jsonb       NOT NULL,
    metadata          jsonb       NOT NULL,
    occurred_at       timestamptz NOT NULL,
    occurred_text     text        NOT NULL,
    topic             text        NOT NULL
) ON COMMIT DELETE ROWS
"""

_REUSED_EVENT_ID = """
SELECT b.event_id, e.aggregate_type, e.aggregate_id, e.aggregate_version
FROM pg_temp.eventstore_batch b
JOIN eventstore.events e USING (event_id)
WHERE (e.aggregate_type, e.aggregate_id, e.aggregate_version)
      IS DISTINCT FROM (b.aggregate_type, b.aggregate_id, b.aggregate_version)
LIMIT 1
"""

_TAKEN_VERSION = """
SELECT b.aggregate_type, b.aggregate_id, b.aggregate_version,
       (SELECT max(x.aggregate_version) FROM eventstore.events x
        WHERE x.aggregate_type = b.aggregate_type AND x.aggregate_id = b.aggregate_id)
FROM pg_temp.eventstore_batch b
JOIN eventstore.events e USING (aggregate_type, aggregate_id, aggregate_version)
WHERE e.event_id <> b.event_id
ORDER BY b.ord
LIMIT 1
"""

_VERSIONS_BEFORE = """
SELECT aggregate_type, aggregate_id, before_version, top_version FROM (
    SELECT b.aggregate_type, b.aggregate_id,
           coalesce((SELECT max(e.aggregate_version) FROM eventstore.events e
                     WHERE e.aggregate_type = b.aggregate_type
                       AND e.aggregate_id = b.aggregate_id), 0) AS before_version,
           b.top_version
    FROM (SELECT aggregate_type, aggregate_id, max(aggregate_version) AS top_version
          FROM pg_temp.eventstore_batch
          WHERE aggregate_type = ANY(%(types)s)
          GROUP BY aggregate_type, aggregate_id) b) v
WHERE top_version / %(every)s > before_version / %(every)s
"""

_INSERT = """
WITH ins AS (
    INSERT INTO eventstore.events (
        event_id, aggregate_type, aggregate_id, aggregate_version, event_type,
        schema_version, payload, metadata, occurred_at)
    SELECT event_id, aggregate_type, aggregate_id, aggregate_version, event_type,
           schema_version, payload, metadata, occurred_at
    FROM pg_temp.eventstore_batch
    ORDER BY ord
    ON CONFLICT (event_id) DO NOTHING
    RETURNING {returning}
), box AS (
    INSERT INTO eventstore.outbox (
        event_id, position, topic, message_key, headers, payload, occurred_at)
    SELECT ins.event_id, ins.position, b.topic, b.aggregate_id,
           jsonb_build_object(
               'event_id', b.event_id::text, 'event_type', b.event_type,
               'schema_version', b.schema_version::text, 'occurred_at', b.occurred_text,
               'aggregate_type', b.aggregate_type,
               'aggregate_version', b.aggregate_version::text,
               'position', ins.position::text),
           jsonb_build_object(
               'event_id', b.event_id::text, 'aggregate_type', b.aggregate_type,
               'aggregate_id', b.aggregate_id, 'aggregate_version', b.aggregate_version,
               'event_type', b.event_type, 'schema_version', b.schema_version,
               'occurred_at', b.occurred_text, 'payload', b.payload, 'metadata', b.metadata,
               'position', ins.position, 'recorded_at', ins.recorded_at),
           b.occurred_at
    FROM ins JOIN pg_temp.eventstore_batch b USING (event_id)
)
SELECT {returning} FROM ins ORDER BY position
"""

_STREAM_VERSION = """
SELECT coalesce(max(aggregate_version), 0) FROM eventstore.events
WHERE aggregate_type = %s AND aggregate_id = %s
"""

_RECORDED_IDS = """
SELECT event_id, aggregate_type, aggregate_id, aggregate_version FROM eventstore.events
WHERE event_id = ANY(%s)
"""

_READ_STREAM = (
    "SELECT " + EVENT_COLUMNS + " FROM eventstore.events "
    "WHERE aggregate_type = %s AND aggregate_id = %s AND aggregate_version > %s "
    "ORDER BY aggregate_version"
)

_LATEST_SNAPSHOT = """
SELECT s.aggregate_version, s.state, s.last_event_id
FROM eventstore.snapshots s
JOIN eventstore.events e
  ON e.aggregate_type = s.aggregate_type AND e.aggregate_id = s.aggregate_id
 AND e.aggregate_version = s.aggregate_version AND e.event_id = s.last_event_id
WHERE s.aggregate_type = %s AND s.aggregate_id = %s AND s.fold_version = %s
ORDER BY s.aggregate_version DESC
LIMIT 1
"""

_SAVE_SNAPSHOT = """
INSERT INTO eventstore.snapshots
    (aggregate_type, aggregate_id, aggregate_version, last_event_id, fold_version, state)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (aggregate_type, aggregate_id, aggregate_version) DO UPDATE
SET last_event_id = EXCLUDED.last_event_id, fold_version = EXCLUDED.fold_version,
    state = EXCLUDED.state, taken_at = now()
"""


def default_topic(event: NewEvent) -> str:
    """``<aggregate type in snake_case>.events``: one topic per domain, keyed by aggregate id."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", event.aggregate_type).lower() + ".events"


@dataclass(frozen=True, slots=True)
class Aggregate:
    """An aggregate's folded state at ``version``; ``replayed`` counts events folded on top of
    the snapshot (all of them when ``snapshot_version`` is None)."""

    aggregate_type: str
    aggregate_id: str
    version: int
    state: State
    snapshot_version: int | None
    replayed: int
    contiguous: bool
    last_event_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What ``append_batch`` did: new events written, already-stored ones skipped, snapshots."""

    appended: int
    duplicates: int
    snapshots: int


class EventStore:
    """The event store over ``eventstore.*`` (sql/postgres/016_event_sourcing_infrastructure.sql).

    Given a connection, every call joins the caller's transaction if one is open, so a caller
    can write events and its own rows atomically; given a pool, each call is its own transaction.
    """

    def __init__(
        self,
        source: Source,
        *,
        snapshot_every: int = SNAPSHOT_EVERY,
        folds: Iterable[Fold] = DEFAULT_FOLDS,
        topic_for: TopicFor = default_topic,
    ) -> None:
        if snapshot_every < 1:
            raise ValueError(f"snapshot_every must be >= 1, got {snapshot_every}")
        self._source = source
        self._snapshot_every = snapshot_every
        self._folds: dict[str, Fold] = {f.aggregate_type: f for f in folds}
        self._topic_for = topic_for

    def register_fold(self, fold: Fold) -> None:
        """Add or replace the fold used to load and snapshot ``fold.aggregate_type``."""
        self._folds[fold.aggregate_type] = fold

    # -- writing ---------------------------------------------------------------------------

    def append(
        self,
        events: Sequence[NewEvent],
        expected_version: int | None = None,
        *,
        topic_for: TopicFor | None = None,
    ) -> list[RecordedEvent]:
        """Append one aggregate's events, consecutive versions, in order; return those written.

        Events whose ids are already stored are skipped (a retry is a no-op). With
        ``expected_version`` the stream must be at exactly that version, else ConcurrencyError.
        """
        batch = list(events)
        if not batch:
            return []
        aggregate_type, aggregate_id = _single_stream(batch)
        _check_consecutive(batch, expected_version)
        with connection(self._source) as conn, conn.transaction():
            _claim_xid(conn)
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                (f"{aggregate_type}\x1f{aggregate_id}",),
            )
            row = conn.execute(_STREAM_VERSION, (aggregate_type, aggregate_id)).fetchone()
            current = int(row[0]) if row else 0
            recorded = _recorded_ids(conn, batch)
            new = [e for e in batch if e.event_id not in recorded]
            if not new:
                return []
            if expected_version is not None:
                skipped = len(batch) - len(new)
                if batch[:skipped] != [e for e in batch if e.event_id in recorded] or (
                    current != expected_version + skipped
                ):
                    raise ConcurrencyError(aggregate_type, aggregate_id, expected_version, current)
            self._stage(conn, new, topic_for or self._topic_for)
            rows = self._write(conn, full=True)
            written = [recorded_event(r) for r in rows]
            self._maybe_snapshot(
                conn, aggregate_type, aggregate_id, current, new[-1].aggregate_version
            )
            return written

    def append_batch(
        self, events: Sequence[NewEvent], *, topic_for: TopicFor | None = None
    ) -> BatchResult:
        """Append many aggregates' events in one transaction (COPY + INSERT ... ON CONFLICT).

        Idempotent by event id. Versions are not checked against an expected version (a
        migration backfills days out of order), but a version already held by a different
        event raises ConcurrencyError and writes nothing. Within one aggregate, events must be
        in ascending version order.
        """
        batch = _dedupe(events)
        if not batch:
            return BatchResult(0, 0, 0)
        _check_ascending(batch)
        with connection(self._source) as conn, conn.transaction():
            _claim_xid(conn)
            self._stage(conn, batch, topic_for or self._topic_for)
            crossings = self._versions_before(conn)
            rows = self._write(conn, full=False)
            snapshots = sum(
                self._maybe_snapshot(conn, atype, aid, before, after)
                for atype, aid, before, after in crossings
            )
        return BatchResult(len(rows), len(batch) - len(rows), snapshots)

    def _stage(
        self, conn: psycopg.Connection[Any], events: list[NewEvent], topic_for: TopicFor
    ) -> None:
        """COPY ``events`` into the session's staging table and refuse conflicting ones."""
        conn.execute(_CREATE_BATCH_TABLE)
        conn.execute("DELETE FROM pg_temp.eventstore_batch")
        copy_sql = sql.SQL("COPY pg_temp.eventstore_batch ({}) FROM STDIN").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in _BATCH_COLUMNS)
        )
        with conn.cursor() as cur, cur.copy(copy_sql) as copy:
            for ord_, event in enumerate(events):
                copy.write_row(_batch_row(ord_, event, topic_for(event)))
        reused = conn.execute(_REUSED_EVENT_ID).fetchone()
        if reused:
            raise EventStoreError(
                f"event id {reused[0]} is already stored for {reused[1]} {reused[2]!r} "
                f"version {reused[3]}; event ids must be unique per change"
            )
        taken = conn.execute(_TAKEN_VERSION).fetchone()
        if taken:
            atype, aid, version, actual = taken
            raise ConcurrencyError(atype, aid, version - 1, int(actual))

    def _versions_before(self, conn: psycopg.Connection[Any]) -> list[tuple[str, str, int, int]]:
        """Per staged aggregate with a fold whose append crosses a multiple of
        ``snapshot_every``: (type, id, stored version, top staged version). The others are
        filtered out in SQL, not fetched."""
        if not self._folds:
            return []
        params = {"types": list(self._folds), "every": self._snapshot_every}
        rows = conn.execute(_VERSIONS_BEFORE, params).fetchall()
        return [(t, i, int(b), int(a)) for t, i, b, a in rows]

    @staticmethod
    def _write(conn: psycopg.Connection[Any], *, full: bool) -> list[tuple[Any, ...]]:
        """Insert the staged events and their outbox rows in one statement."""
        returning = sql.SQL(EVENT_COLUMNS if full else "position, event_id, recorded_at")
        try:
            return conn.execute(sql.SQL(_INSERT).format(returning=returning)).fetchall()
        except psycopg.errors.UniqueViolation as exc:
            raise EventStoreError(
                "a concurrent writer appended the same aggregate versions; reload and retry "
                f"({exc.diag.message_detail})"
            ) from exc

    # -- reading ---------------------------------------------------------------------------

    def version(self, aggregate_type: str, aggregate_id: str) -> int:
        """The stream's current version (0 when it has no events)."""
        with connection(self._source) as conn:
            row = conn.execute(_STREAM_VERSION, (aggregate_type, aggregate_id)).fetchone()
        return int(row[0]) if row else 0

    def read_stream(
        self, aggregate_type: str, aggregate_id: str, after_version: int = 0
    ) -> list[RecordedEvent]:
        """One aggregate's events after ``after_version``, in version order."""
        with connection(self._source) as conn:
            rows = conn.execute(_READ_STREAM, (aggregate_type, aggregate_id, after_version))
            return [recorded_event(r) for r in rows.fetchall()]

    def load(
        self, aggregate_type: str, aggregate_id: str, *, use_snapshots: bool = True
    ) -> Aggregate:
        """Latest valid snapshot plus the events after it, folded; ``use_snapshots=False``
        replays everything (the reference the snapshot path must equal)."""
        with connection(self._source) as conn, conn.transaction():
            return self._load(conn, aggregate_type, aggregate_id, use_snapshots=use_snapshots)

    def snapshot(self, aggregate_type: str, aggregate_id: str) -> int | None:
        """Take a snapshot now; return its version, or None if the stream is empty or has gaps."""
        with connection(self._source) as conn, conn.transaction():
            return self._save_snapshot(conn, aggregate_type, aggregate_id)

    def _fold(self, aggregate_type: str) -> Fold:
        try:
            return self._folds[aggregate_type]
        except KeyError:
            raise EventStoreError(
                f"no fold registered for aggregate type {aggregate_type!r}; "
                f"known: {', '.join(sorted(self._folds)) or 'none'}"
            ) from None

    def _load(
        self,
        conn: psycopg.Connection[Any],
        aggregate_type: str,
        aggregate_id: str,
        *,
        use_snapshots: bool = True,
    ) -> Aggregate:
        fold = self._fold(aggregate_type)
        state: State = fold.initial(aggregate_id)
        version = 0
        snapshot_version: int | None = None
        last_event_id: uuid.UUID | None = None
        if use_snapshots:
            snap = conn.execute(
                _LATEST_SNAPSHOT, (aggregate_type, aggregate_id, fold.version)
            ).fetchone()
            if snap:
                snapshot_version, state, last_event_id = int(snap[0]), snap[1], snap[2]
                version = snapshot_version
        rows = conn.execute(_READ_STREAM, (aggregate_type, aggregate_id, version)).fetchall()
        contiguous = True
        for row in rows:
            event = recorded_event(row)
            contiguous = contiguous and event.aggregate_version == version + 1
            state = fold.apply(state, event)
            version = event.aggregate_version
            last_event_id = event.event_id
        return Aggregate(
            aggregate_type,
            aggregate_id,
            version,
            state,
            snapshot_version,
            len(rows),
            contiguous,
            last_event_id,
        )

    # -- snapshots -------------------------------------------------------------------------

    def _maybe_snapshot(
        self,
        conn: psycopg.Connection[Any],
        aggregate_type: str,
        aggregate_id: str,
        before: int,
        after: int,
    ) -> bool:
        """Snapshot when an append crosses a multiple of ``snapshot_every``."""
        if aggregate_type not in self._folds:
            return False
        if after // self._snapshot_every <= before // self._snapshot_every:
            return False
        return self._save_snapshot(conn, aggregate_type, aggregate_id) is not None

    def _save_snapshot(
        self, conn: psycopg.Connection[Any], aggregate_type: str, aggregate_id: str
    ) -> int | None:
        aggregate = self._load(conn, aggregate_type, aggregate_id)
        if aggregate.last_event_id is None or not aggregate.contiguous:
            return None
        conn.execute(
            _SAVE_SNAPSHOT,
            (
                aggregate_type,
                aggregate_id,
                aggregate.version,
                aggregate.last_event_id,
                self._fold(aggregate_type).version,
                jsonb(aggregate.state),
            ),
        )
        return aggregate.version


def _claim_xid(conn: psycopg.Connection[Any]) -> None:
    """Take the transaction id before any position: the reader's no-skip proof needs it."""
    conn.execute("SELECT pg_current_xact_id()")


def _single_stream(events: list[NewEvent]) -> tuple[str, str]:
    first = events[0]
    for e in events[1:]:
        if (e.aggregate_type, e.aggregate_id) != (first.aggregate_type, first.aggregate_id):
            raise ValueError(
                "append() takes one aggregate's events; got "
                f"{first.aggregate_type} {first.aggregate_id!r} and "
                f"{e.aggregate_type} {e.aggregate_id!r} (use append_batch for many)"
            )
    return first.aggregate_type, first.aggregate_id


def _check_consecutive(events: list[NewEvent], expected_version: int | None) -> None:
    start = events[0].aggregate_version if expected_version is None else expected_version + 1
    versions = [e.aggregate_version for e in events]
    if versions != list(range(start, start + len(events))):
        raise ValueError(
            f"versions must be consecutive from {start}, got {versions} "
            f"(expected_version={expected_version})"
        )


def _check_ascending(events: list[NewEvent]) -> None:
    last: dict[tuple[str, str], int] = {}
    for e in events:
        key = (e.aggregate_type, e.aggregate_id)
        if key in last and e.aggregate_version <= last[key]:
            raise ValueError(
                f"{e.aggregate_type} {e.aggregate_id!r}: version {e.aggregate_version} follows "
                f"{last[key]}; a batch must list each aggregate's events in ascending version order"
            )
        last[key] = e.aggregate_version


def _dedupe(events: Iterable[NewEvent]) -> list[NewEvent]:
    """Drop repeated identical events; refuse one id used for two different events."""
    seen: dict[uuid.UUID, NewEvent] = {}
    out: list[NewEvent] = []
    for e in events:
        prior = seen.get(e.event_id)
        if prior is None:
            seen[e.event_id] = e
            out.append(e)
        elif prior != e:
            raise EventStoreError(f"event id {e.event_id} names two different events in one batch")
    return out


def _recorded_ids(conn: psycopg.Connection[Any], events: list[NewEvent]) -> set[uuid.UUID]:
    rows = conn.execute(_RECORDED_IDS, ([e.event_id for e in events],)).fetchall()
    wanted = {e.event_id: e for e in events}
    for event_id, atype, aid, version in rows:
        e = wanted[event_id]
        if (atype, aid, version) != (e.aggregate_type, e.aggregate_id, e.aggregate_version):
            raise EventStoreError(
                f"event id {event_id} is already stored for {atype} {aid!r} version {version}, "
                f"not {e.aggregate_type} {e.aggregate_id!r} version {e.aggregate_version}"
            )
    return {r[0] for r in rows}


def _batch_row(ord_: int, event: NewEvent, topic: str) -> tuple[Any, ...]:
    """One staged event. Its outbox row (headers and envelope) is built from these columns in
    SQL: the payload crosses the wire once, and `occurred_text` keeps the time as written."""
    if event.occurred_at.tzinfo is None:
        raise ValueError(
            f"event {event.event_id}: occurred_at must be timezone-aware (partitions are UTC days)"
        )
    return (
        ord_,
        event.event_id,
        event.aggregate_type,
        event.aggregate_id,
        event.aggregate_version,
        event.event_type,
        event.schema_version,
        jsonb(event.payload),
        jsonb(event.metadata),
        event.occurred_at,
        event.occurred_at.isoformat(),
        topic,
    )
