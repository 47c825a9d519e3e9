"""Read every event in global position order, never skipping one whose writer commits late.

Why a plain ``WHERE position > last_seen`` is not enough: positions are taken at insert time
but become visible at commit, so a reader can see position 11 before a slower transaction
commits position 10, move its cursor past 10, and never see it.

Why filtering on ``writer_xid < pg_snapshot_xmin(pg_current_snapshot())`` alone is not enough
either: transaction ids are taken in a different order than positions. A transaction that got
its xid first may take its position last (or interleave positions with another transaction's
multi-row insert), so an event can pass the xid filter while a lower position is still
uncommitted.

What this reader does instead is a watermark in two steps:

1. read ``H``, the highest position handed out so far (the identity sequence's last value),
   then take a fresh transaction id ``X`` with ``pg_current_xact_id()`` in a transaction of
   its own that commits at once. Writers claim their xid before they take a position (see
   :mod:`strangler.event_store.store`), so every transaction that took a position ``<= H``
   got its xid before ``X`` was handed out: its xid is ``< X``. (A snapshot's xmax will not
   do: it is the latest *completed* xid + 1, and a running writer's xid can be above it.)
2. later, once ``pg_snapshot_xmin(pg_current_snapshot()) >= X``, every transaction with an xid
   below ``X`` has finished: each position ``<= H`` is committed (and visible) or will never
   exist. Only then are events up to ``H`` returned.

A new watermark is taken only when ``H`` has moved, so an idle reader uses no xids; a busy one
uses one per poll. A reader lags writers by about one poll plus the longest write transaction
running when the watermark was taken. The reader's connection must not be inside a
transaction (it would hold back xmin, and the watermark xid must commit at once) and must run
at READ COMMITTED so each statement sees a new snapshot: use its own connection or a pool.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg

from strangler.event_store._db import EVENT_COLUMNS, Source, connection, recorded_event
from strangler.event_store.errors import EventStoreError
from strangler.event_store.model import RecordedEvent

_HIGHEST_POSITION = """
SELECT coalesce(
    pg_sequence_last_value(pg_get_serial_sequence('eventstore.events', 'position')::regclass), 0)
"""

_NEW_XID = "SELECT pg_current_xact_id()::text"

_XMIN = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text"

_READ_RANGE = (
    "SELECT " + EVENT_COLUMNS + " FROM eventstore.events "
    "WHERE position > %s AND position <= %s ORDER BY position LIMIT %s"
)


def _scalar(conn: psycopg.Connection[Any], query: str) -> int:
    """One value, in a transaction of its own (also on non-autocommit connections)."""
    with conn.transaction():
        row = conn.execute(query).fetchone()
    if row is None:
        raise EventStoreError(f"no row from {query!r}")
    return int(row[0])


@dataclass(frozen=True, slots=True)
class Watermark:
    """Every position ``<= position`` was taken by a transaction with an xid ``< xid``."""

    position: int
    xid: int


class GlobalReader:
    """Follows ``eventstore.events`` by global position; each instance keeps its watermarks.

    ``read_all`` returns only events at or below the safe position, so a cursor that moves to
    the last returned position never passes an event that is still to commit.
    """

    def __init__(self, source: Source, *, max_pending: int = 64) -> None:
        if isinstance(source, psycopg.Connection) and source.isolation_level in (
            psycopg.IsolationLevel.REPEATABLE_READ,
            psycopg.IsolationLevel.SERIALIZABLE,
        ):
            raise ValueError("the global reader needs READ COMMITTED: one snapshot per statement")
        self._source = source
        self._max_pending = max(2, max_pending)
        self._pending: list[Watermark] = []
        self._safe = 0

    @property
    def safe_position(self) -> int:
        """The highest position known to be final, as of the last poll."""
        return self._safe

    def poll(self) -> int:
        """Record a new watermark, retire those whose writers have all finished; return the
        safe position."""
        with connection(self._source) as conn:
            return self._poll(conn)

    def _poll(self, conn: psycopg.Connection[Any]) -> int:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            raise EventStoreError(
                "the global reader needs a connection outside any transaction "
                "(its own connection, or a pool)"
            )
        highest = _scalar(conn, _HIGHEST_POSITION)
        last = self._pending[-1].position if self._pending else self._safe
        if highest > last:
            self._pending.append(Watermark(highest, _scalar(conn, _NEW_XID)))
        if not self._pending:
            return self._safe
        xmin = _scalar(conn, _XMIN)
        settled = [w.position for w in self._pending if w.xid <= xmin]
        if settled:
            self._safe = max(self._safe, *settled)
        pending = [w for w in self._pending if w.xid > xmin]
        if len(pending) > self._max_pending:
            pending = pending[:1] + pending[-(self._max_pending - 1) :]
        self._pending = pending
        return self._safe

    def read_all(
        self,
        after_position: int = 0,
        limit: int = 1000,
        *,
        wait_s: float = 0.0,
        poll_interval_s: float = 0.05,
    ) -> list[RecordedEvent]:
        """Events after ``after_position`` up to the safe position, in position order.

        ``wait_s > 0`` waits (up to that long) until every event that existed when the call
        began is final, for one-shot readers that have no earlier watermark.
        """
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        deadline = time.monotonic() + wait_s
        with connection(self._source) as conn:
            self._poll(conn)
            target = self._pending[-1].position if self._pending else self._safe
            while self._safe < target and time.monotonic() < deadline:
                time.sleep(poll_interval_s)
                self._poll(conn)
            with conn.transaction():
                rows = conn.execute(_READ_RANGE, (after_position, self._safe, limit)).fetchall()
        return [recorded_event(r) for r in rows]

    def iter_all(
        self,
        after_position: int = 0,
        *,
        batch_size: int = 1000,
        poll_interval_s: float = 0.1,
        idle_timeout_s: float | None = None,
    ) -> Iterator[RecordedEvent]:
        """Every event after ``after_position``, following new ones as they become final.

        Stops after ``idle_timeout_s`` without a new event (never, when None).
        """
        position = after_position
        idle_since = time.monotonic()
        while True:
            batch = self.read_all(position, batch_size)
            if batch:
                yield from batch
                position = batch[-1].position
                idle_since = time.monotonic()
                continue
            if idle_timeout_s is not None and time.monotonic() - idle_since >= idle_timeout_s:
                return
            time.sleep(poll_interval_s)
