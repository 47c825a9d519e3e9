"""One day's events -> the Weaviate objects they stand for (no network I/O).

Every event of an aggregate lives in the partition of the aggregate's creation day, so a day's
events fold into complete objects: the latest payload wins (by aggregate version), Kafka
duplicates (same event id) fold away. Values pass through uncoerced: a value of the wrong
type is Weaviate's to reject, and that rejection is recorded, never hidden by a cast.

A day can be larger than memory, so `DayFold` spills its records to a private SQLite file in a
temporary directory and hands objects back in chunks, each built from its own records only:
memory stays flat as the day grows. The directory goes with `close()` (or the fold itself).
"""

from __future__ import annotations

import pickle
import shutil
import sqlite3
import tempfile
import weakref
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from uuid import UUID

from weaviate.util import generate_uuid5

from strangler.migration.kafka_records import EventRecord
from strangler.search.schema import DAY

CREATION_EVENTS = {
    "Customer": {"CustomerRegistered"},
    "Document": {"DocumentUploaded"},
    "OcrPage": {"OcrPageExtracted"},
}
STATE_EVENTS = {
    "Customer": {"CustomerRegistered", "CustomerUpdated"},
    "Document": {"DocumentUploaded"},
    "OcrPage": {"OcrPageExtracted", "OcrPageCorrected"},
}
CHUNK = 1_000
"""Objects per chunk when the caller does not say."""
_INSERT_BATCH = 1_000


def object_uuid(aggregate_type: str, aggregate_id: str | int) -> UUID:
    """Deterministic: the same aggregate always lands on the same Weaviate object."""
    return UUID(generate_uuid5(str(aggregate_id), aggregate_type))


def vector_text(aggregate_type: str, properties: Mapping[str, Any]) -> str:
    """The text an object's vector is computed from (also the quality check's query)."""
    if aggregate_type == "Customer":
        parts = [properties.get("name"), properties.get("plan"), properties.get("country")]
        return ", ".join(str(p) for p in parts if p)
    if aggregate_type == "Document":
        title = properties.get("title") or ""
        category = str(properties.get("category") or "").replace("_", " ")
        return f"{title} ({category})" if category else str(title)
    if aggregate_type == "OcrPage":
        return str(properties.get("text") or "")
    raise ValueError(f"no vector text for {aggregate_type!r}")


@dataclass(frozen=True)
class SearchObject:
    aggregate_type: str
    aggregate_id: str
    uuid: UUID
    properties: dict[str, Any]
    references: dict[str, UUID]
    event_ids: tuple[UUID, ...]

    @property
    def text(self) -> str:
        return vector_text(self.aggregate_type, self.properties)


@dataclass(frozen=True)
class Skipped:
    aggregate_type: str
    aggregate_id: str
    reason: str
    event_ids: tuple[UUID, ...]


@dataclass(frozen=True)
class _Record:
    """The part of an event `_build` reads back from the spill."""

    event_id: UUID
    event_type: str
    aggregate_version: int
    position: int
    payload: dict[str, Any]


_SCHEMA = """
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    aggregate_type TEXT NOT NULL,
    aggregate_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    sort_key TEXT NOT NULL,
    creates INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    aggregate_version INTEGER NOT NULL,
    position INTEGER NOT NULL,
    payload BLOB NOT NULL,
    UNIQUE (aggregate_type, aggregate_id, event_id)
);
CREATE TABLE tenants (
    aggregate_type TEXT NOT NULL,
    aggregate_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id)
);
CREATE TABLE ranked (
    run INTEGER NOT NULL,
    aggregate_type TEXT NOT NULL,
    rank INTEGER NOT NULL,
    aggregate_id TEXT NOT NULL,
    tenant TEXT,
    PRIMARY KEY (run, rank)
);
"""


def _sort_key(aggregate_id: str) -> str:
    """Text that sorts like `_stream_order`'s number: non-numeric ids (-1) first, then numeric
    ids by value (digit count, then digits), so SQLite orders streams as the fold always has."""
    if not aggregate_id.isdigit():
        return "0"
    digits = str(int(aggregate_id))
    return f"1{len(digits):08d}{digits}"


def _close_store(conn: sqlite3.Connection, directory: str) -> None:
    conn.close()
    shutil.rmtree(directory, ignore_errors=True)


class DayFold:
    """Accumulates a day's records on disk; `chunks()` streams the objects of one type.

    Usable as a context manager; `close()` deletes the spill (a fold that is garbage collected
    or left open at exit deletes it too).
    """

    def __init__(self, day: str) -> None:
        self.day = day
        self.events = 0
        self.duplicates = 0
        self._dir = tempfile.mkdtemp(prefix="strangler-dayfold-")
        # One thread at a time: the sink's encode worker reads chunks while the caller waits.
        self._conn = sqlite3.connect(
            Path(self._dir) / "fold.sqlite3", isolation_level=None, check_same_thread=False
        )
        self._finalizer = weakref.finalize(self, _close_store, self._conn, self._dir)
        for pragma in ("journal_mode = OFF", "synchronous = OFF", "temp_store = FILE"):
            self._conn.execute(f"PRAGMA {pragma}")
        self._conn.executescript(_SCHEMA)
        self._runs = 0

    @property
    def path(self) -> Path:
        """The spill directory (gone once closed)."""
        return Path(self._dir)

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> DayFold:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def add(self, records: Iterable[EventRecord]) -> None:
        batch: list[tuple[Any, ...]] = []
        for r in records:
            if r.aggregate_type not in CREATION_EVENTS or r.partition_day != self.day:
                continue
            batch.append(
                (
                    r.aggregate_type,
                    r.aggregate_id,
                    str(r.event_id),
                    _sort_key(r.aggregate_id),
                    int(r.event_type in CREATION_EVENTS[r.aggregate_type]),
                    r.event_type,
                    r.aggregate_version,
                    r.position,
                    pickle.dumps(r.payload, protocol=pickle.HIGHEST_PROTOCOL),
                )
            )
            if len(batch) >= _INSERT_BATCH:
                self._insert(batch)
                batch = []
        if batch:
            self._insert(batch)

    def _insert(self, batch: list[tuple[Any, ...]]) -> None:
        """INSERT OR IGNORE: a redelivered event id of the same aggregate is a duplicate."""
        with self._conn:
            cursor = self._conn.executemany(
                "INSERT OR IGNORE INTO events (aggregate_type, aggregate_id, event_id, sort_key,"
                " creates, event_type, aggregate_version, position, payload)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                batch,
            )
        inserted = cursor.rowcount
        self.events += inserted
        self.duplicates += len(batch) - inserted

    def count(self, aggregate_type: str) -> int:
        """Objects of the type (aggregates with a creation event on the day)."""
        row = self._conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM events WHERE aggregate_type = ?"
            " GROUP BY aggregate_id HAVING max(creates) = 1)",
            (aggregate_type,),
        ).fetchone()
        return int(row[0])

    def assign_tenants(self, aggregate_type: str, tenants: Iterable[tuple[str, str]]) -> None:
        """Record (aggregate id, tenant) pairs for `chunks(..., by_tenant=True)`."""
        with self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO tenants (aggregate_type, aggregate_id, tenant)"
                " VALUES (?, ?, ?)",
                ((aggregate_type, aid, tenant) for aid, tenant in tenants),
            )

    def clear_tenants(self, aggregate_type: str) -> None:
        with self._conn:
            self._conn.execute("DELETE FROM tenants WHERE aggregate_type = ?", (aggregate_type,))

    def chunks(
        self, aggregate_type: str, size: int = CHUNK, *, by_tenant: bool = False
    ) -> Iterator[list[tuple[str | None, SearchObject]]]:
        """(tenant, object) lists of at most `size`, in the fold's deterministic order
        (`_stream_order`), or grouped by assigned tenant (stable; objects without a tenant
        left out). No statement stays open between chunks, so the consumer may use the fold
        (or hand the iterator to another thread) in between."""
        run, total = self._rank(aggregate_type, by_tenant)
        for start in range(0, total, size):
            rows = self._conn.execute(
                "SELECT r.rank, r.aggregate_id, r.tenant, e.event_id, e.event_type,"
                " e.aggregate_version, e.position, e.payload"
                " FROM ranked r JOIN events e"
                " ON e.aggregate_type = r.aggregate_type AND e.aggregate_id = r.aggregate_id"
                " WHERE r.run = ? AND r.rank >= ? AND r.rank < ?"
                " ORDER BY r.rank, e.seq",
                (run, start, start + size),
            ).fetchall()
            out: list[tuple[str | None, SearchObject]] = []
            for aid, tenant, records in _grouped(rows):
                event_ids = tuple(r.event_id for r in records)
                out.append((tenant, _build(aggregate_type, aid, records, self.day, event_ids)))
            yield out
        self._unrank(run)

    def stream(self, aggregate_type: str, size: int = CHUNK) -> Iterator[SearchObject]:
        """The type's objects one by one (read `size` at a time)."""
        for chunk in self.chunks(aggregate_type, size):
            for _tenant, o in chunk:
                yield o

    def keys(
        self, aggregate_type: str, size: int = 10 * CHUNK
    ) -> Iterator[tuple[str, tuple[UUID, ...]]]:
        """(aggregate id, event ids) of the type's objects in order, without their payloads."""
        run, total = self._rank(aggregate_type, False)
        for start in range(0, total, size):
            rows = self._conn.execute(
                "SELECT r.rank, r.aggregate_id, r.tenant, e.event_id, '',"
                " e.aggregate_version, e.position, NULL"
                " FROM ranked r JOIN events e"
                " ON e.aggregate_type = r.aggregate_type AND e.aggregate_id = r.aggregate_id"
                " WHERE r.run = ? AND r.rank >= ? AND r.rank < ?"
                " ORDER BY r.rank, e.seq",
                (run, start, start + size),
            ).fetchall()
            for aid, _tenant, records in _grouped(rows):
                yield aid, tuple(r.event_id for r in records)
        self._unrank(run)

    def skipped(self) -> list[Skipped]:
        """Aggregates of the day without their creation event (not objects: reported)."""
        out: list[Skipped] = []
        for atype in sorted(CREATION_EVENTS):
            rows = self._conn.execute(
                "SELECT e.aggregate_id, e.aggregate_id, NULL, e.event_id, '', e.aggregate_version,"
                " e.position, NULL FROM events e JOIN (SELECT aggregate_id FROM events"
                " WHERE aggregate_type = ? GROUP BY aggregate_id HAVING max(creates) = 0) s"
                " ON e.aggregate_id = s.aggregate_id WHERE e.aggregate_type = ?"
                " ORDER BY e.sort_key, e.aggregate_id, e.seq",
                (atype, atype),
            ).fetchall()
            reason = f"no {sorted(CREATION_EVENTS[atype])} event on {self.day}"
            for aid, _tenant, records in _grouped(rows):
                out.append(Skipped(atype, aid, reason, tuple(r.event_id for r in records)))
        return out

    def objects(self) -> tuple[dict[str, list[SearchObject]], list[Skipped]]:
        """Every object of the day at once: for small days and tests (the sink streams)."""
        out = {t: list(self.stream(t)) for t in CREATION_EVENTS}
        return out, self.skipped()

    def _rank(self, aggregate_type: str, by_tenant: bool) -> tuple[int, int]:
        """Number the type's complete aggregates in the order `chunks` returns them, under a
        run of their own (two iterations at once never share a numbering); (run, count)."""
        self._runs += 1
        run = self._runs
        with self._conn:
            complete = (
                "SELECT aggregate_id, min(sort_key) AS sort_key FROM events"
                " WHERE aggregate_type = ? GROUP BY aggregate_id HAVING max(creates) = 1"
            )
            if by_tenant:
                cursor = self._conn.execute(
                    "INSERT INTO ranked (run, aggregate_type, rank, aggregate_id, tenant)"
                    " SELECT ?, ?, row_number() OVER"
                    " (ORDER BY t.tenant, c.sort_key, c.aggregate_id) - 1, c.aggregate_id, t.tenant"
                    f" FROM ({complete}) c JOIN tenants t"
                    " ON t.aggregate_type = ? AND t.aggregate_id = c.aggregate_id",
                    (run, aggregate_type, aggregate_type, aggregate_type),
                )
            else:
                cursor = self._conn.execute(
                    "INSERT INTO ranked (run, aggregate_type, rank, aggregate_id, tenant)"
                    " SELECT ?, ?, row_number() OVER (ORDER BY c.sort_key, c.aggregate_id) - 1,"
                    f" c.aggregate_id, NULL FROM ({complete}) c",
                    (run, aggregate_type, aggregate_type),
                )
            return run, int(cursor.rowcount)

    def _unrank(self, run: int) -> None:
        with self._conn:
            self._conn.execute("DELETE FROM ranked WHERE run = ?", (run,))


def _grouped(
    rows: list[tuple[Any, ...]],
) -> Iterator[tuple[str, str | None, list[_Record]]]:
    """Consecutive rows of one aggregate (same first column) -> its records sorted as the fold
    applies them (aggregate version, then position; ties keep arrival order)."""
    current: tuple[Any, str, str | None] | None = None
    records: list[_Record] = []
    for rank, aid, tenant, event_id, event_type, version, position, payload in rows:
        if current is not None and current[0] != rank:
            yield current[1], current[2], sorted(records, key=_apply_order)
            records = []
        current = (rank, aid, tenant)
        records.append(
            _Record(
                UUID(event_id),
                event_type,
                version,
                position,
                pickle.loads(payload) if payload is not None else {},
            )
        )
    if current is not None:
        yield current[1], current[2], sorted(records, key=_apply_order)


def _apply_order(r: _Record) -> tuple[int, int]:
    return (r.aggregate_version, r.position)


def _stream_order(item: tuple[tuple[str, str], Any]) -> tuple[str, int, str]:
    """The order objects come in (type, numeric id, id); `_sort_key` mirrors it in SQL."""
    (atype, aid), _ = item
    return (atype, int(aid) if aid.isdigit() else -1, aid)


def _build(
    atype: str, aid: str, records: list[_Record], day: str, event_ids: tuple[UUID, ...]
) -> SearchObject:
    state: dict[str, Any] = {}
    status: str | None = None
    for r in records:
        if r.event_type in STATE_EVENTS[atype]:
            state = dict(r.payload)
        elif r.event_type == "DocumentStatusChanged":
            status = r.payload.get("status")
    refs: dict[str, UUID] = {}
    if atype == "Customer":
        props = {
            "customer_id": state.get("customer_id"),
            "name": state.get("name"),
            "plan": state.get("plan"),
            "country": state.get("country"),
        }
    elif atype == "Document":
        props = {
            "document_id": state.get("document_id"),
            "customer_id": state.get("customer_id"),
            "title": state.get("title"),
            "category": state.get("category"),
            "status": status or "uploaded",
            "page_count": state.get("page_count"),
        }
        if state.get("customer_id") is not None:
            refs["customer"] = object_uuid("Customer", state["customer_id"])
    else:
        props = {
            "page_id": state.get("page_id"),
            "document_id": state.get("document_id"),
            "page_number": state.get("page_number"),
            "text": state.get("text"),
            "confidence": state.get("confidence"),
        }
        if state.get("document_id") is not None:
            refs["document"] = object_uuid("Document", state["document_id"])
    props[DAY] = day
    return SearchObject(atype, aid, object_uuid(atype, aid), props, refs, event_ids)
