"""One day's events -> the Weaviate objects they stand for (no network I/O).

Every event of a row lives in the row's partition, so a day's events fold into complete
objects. An event belongs to the searchable aggregate that declares its type (`event_types`;
a folded aggregate's events travel in its parent's stream) and to the row its metadata names
(`source_id`, else the stream id). A row's state is the payloads of its non-delete events
merged in order (aggregate version, then position; the latest value of a field wins), Kafka
duplicates (same event id) fold away, and a row with a delete event is no object at all (the
sink deletes what an earlier run wrote of it). Values of typed properties pass through
uncoerced: a value of the wrong type is Weaviate's to reject, and that rejection is recorded,
never hidden by a cast.

A day can be larger than memory, so `DayFold` spills its records to a private SQLite file in a
temporary directory and hands objects back in chunks, each built from its own records only:
memory stays flat as the day grows. The directory goes with `close()` (or the fold itself).
"""

from __future__ import annotations

import json
import pickle
import shutil
import sqlite3
import tempfile
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from uuid import UUID

from weaviate.util import generate_uuid5

from strangler.migration.kafka_records import EventRecord
from strangler.migration.source import KEY_SEPARATOR
from strangler.search.schema import DAY, SOURCE_ID, CollectionDecl
from strangler.spec.models import TEMPLATE_FIELD

CHUNK = 1_000
"""Objects per chunk when the caller does not say."""
_INSERT_BATCH = 1_000


def object_uuid(aggregate: str, row_id: str | int) -> UUID:
    """Deterministic: the same row always lands on the same Weaviate object."""
    return UUID(generate_uuid5(str(row_id), aggregate))


def text_value(value: Any) -> str:
    """A value as it reads in an embedded text (and in a text-of-JSON property). A date read
    back from Weaviate reads as the event's RFC 3339 text did, so the recall probe re-renders
    the very text that was embedded."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list | bool):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def render(template: str, values: Mapping[str, Any]) -> str:
    """The `search.text` template over a row's state: `{field}` -> the field's value."""
    return TEMPLATE_FIELD.sub(lambda m: text_value(values.get(m.group(1))), template).strip()


def key_text(values: Sequence[Any]) -> str:
    """A row key from its columns' JSON values, as the events' `source_id` writes it."""
    return KEY_SEPARATOR.join(
        str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in values
    )


@dataclass(frozen=True)
class SearchObject:
    aggregate: str
    row_id: str
    uuid: UUID
    properties: dict[str, Any]
    references: dict[str, UUID]
    """Reference property -> the parent row's object uuid."""
    parents: dict[str, str]
    """Searchable parent aggregate -> the parent row's id (when the foreign key is set)."""
    text: str
    tenant_key: Any
    """The value of the tenant field (None without a field tenant)."""
    event_ids: tuple[UUID, ...]


@dataclass(frozen=True)
class _Record:
    """The part of an event `build` reads back from the spill."""

    event_id: UUID
    event_type: str
    aggregate_version: int
    position: int
    payload: dict[str, Any]


_SCHEMA = """
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    aggregate TEXT NOT NULL,
    row_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    sort_key TEXT NOT NULL,
    deletes INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    aggregate_version INTEGER NOT NULL,
    position INTEGER NOT NULL,
    payload BLOB NOT NULL,
    UNIQUE (aggregate, row_id, event_id)
);
CREATE TABLE tenants (
    aggregate TEXT NOT NULL,
    row_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    PRIMARY KEY (aggregate, row_id)
);
CREATE TABLE ranked (
    run INTEGER NOT NULL,
    aggregate TEXT NOT NULL,
    rank INTEGER NOT NULL,
    row_id TEXT NOT NULL,
    tenant TEXT,
    PRIMARY KEY (run, rank)
);
"""


def _sort_key(row_id: str) -> str:
    """Text that sorts like `_stream_order`'s number: non-numeric ids (-1) first, then numeric
    ids by value (digit count, then digits), so SQLite orders rows as the fold always has."""
    if not row_id.isdigit():
        return "0"
    digits = str(int(row_id))
    return f"1{len(digits):08d}{digits}"


def _close_store(conn: sqlite3.Connection, directory: str) -> None:
    conn.close()
    shutil.rmtree(directory, ignore_errors=True)


def row_of(record: EventRecord) -> str:
    """The source row an event is about: its metadata's `source_id`, else its stream id."""
    source_id = record.metadata.get("source_id") if record.metadata else None
    return str(source_id) if source_id is not None else record.aggregate_id


class DayFold:
    """Accumulates a day's records of the declared collections on disk; `chunks()` streams
    one aggregate's objects.

    Usable as a context manager; `close()` deletes the spill (a fold that is garbage collected
    or left open at exit deletes it too).
    """

    def __init__(self, day: str, decls: Sequence[CollectionDecl]) -> None:
        self.day = day
        self.decls = {d.aggregate: d for d in decls}
        self._routes: dict[tuple[str, str], tuple[str, bool]] = {}
        for d in decls:
            for event_type in d.upsert_events:
                self._routes[(d.stream_type, event_type)] = (d.aggregate, False)
            for event_type in d.delete_events:
                self._routes[(d.stream_type, event_type)] = (d.aggregate, True)
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
    def stream_types(self) -> list[str]:
        return sorted({d.stream_type for d in self.decls.values()})

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
            route = self._routes.get((r.aggregate_type, r.event_type))
            if route is None or r.partition_day != self.day:
                continue
            row_id = row_of(r)
            batch.append(
                (
                    route[0],
                    row_id,
                    str(r.event_id),
                    _sort_key(row_id),
                    int(route[1]),
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
        """INSERT OR IGNORE: a redelivered event id of the same row is a duplicate."""
        with self._conn:
            cursor = self._conn.executemany(
                "INSERT OR IGNORE INTO events (aggregate, row_id, event_id, sort_key,"
                " deletes, event_type, aggregate_version, position, payload)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                batch,
            )
        inserted = cursor.rowcount
        self.events += inserted
        self.duplicates += len(batch) - inserted

    def count(self, aggregate: str) -> int:
        """Objects of the aggregate (rows of the day without a delete event)."""
        row = self._conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM events WHERE aggregate = ?"
            " GROUP BY row_id HAVING max(deletes) = 0)",
            (aggregate,),
        ).fetchone()
        return int(row[0])

    def assign_tenants(self, aggregate: str, tenants: Iterable[tuple[str, str]]) -> None:
        """Record (row id, tenant) pairs for `chunks(..., by_tenant=True)`."""
        with self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO tenants (aggregate, row_id, tenant) VALUES (?, ?, ?)",
                ((aggregate, row_id, tenant) for row_id, tenant in tenants),
            )

    def clear_tenants(self, aggregate: str) -> None:
        with self._conn:
            self._conn.execute("DELETE FROM tenants WHERE aggregate = ?", (aggregate,))

    def chunks(
        self, aggregate: str, size: int = CHUNK, *, by_tenant: bool = False
    ) -> Iterator[list[tuple[str | None, SearchObject]]]:
        """(tenant, object) lists of at most `size`, in the fold's deterministic order
        (`_stream_order`), or grouped by assigned tenant (stable; objects without a tenant
        left out). No statement stays open between chunks, so the consumer may use the fold
        (or hand the iterator to another thread) in between."""
        decl = self.decls[aggregate]
        run, total = self._rank(aggregate, by_tenant)
        for start in range(0, total, size):
            rows = self._conn.execute(
                "SELECT r.rank, r.row_id, r.tenant, e.event_id, e.event_type,"
                " e.aggregate_version, e.position, e.payload"
                " FROM ranked r JOIN events e"
                " ON e.aggregate = r.aggregate AND e.row_id = r.row_id"
                " WHERE r.run = ? AND r.rank >= ? AND r.rank < ?"
                " ORDER BY r.rank, e.seq",
                (run, start, start + size),
            ).fetchall()
            out: list[tuple[str | None, SearchObject]] = []
            for row_id, tenant, records in _grouped(rows):
                out.append((tenant, build(decl, row_id, records, self.day)))
            yield out
        self._unrank(run)

    def stream(self, aggregate: str, size: int = CHUNK) -> Iterator[SearchObject]:
        """The aggregate's objects one by one (read `size` at a time)."""
        for chunk in self.chunks(aggregate, size):
            for _tenant, o in chunk:
                yield o

    def keys(
        self, aggregate: str, size: int = 10 * CHUNK, *, deleted: bool = False
    ) -> Iterator[tuple[str, tuple[UUID, ...]]]:
        """(row id, event ids) of the aggregate's objects in order, without their payloads;
        with `deleted`, of its rows deleted on the day instead."""
        run, total = self._rank(aggregate, False, deleted=deleted)
        for start in range(0, total, size):
            rows = self._conn.execute(
                "SELECT r.rank, r.row_id, r.tenant, e.event_id, '',"
                " e.aggregate_version, e.position, NULL"
                " FROM ranked r JOIN events e"
                " ON e.aggregate = r.aggregate AND e.row_id = r.row_id"
                " WHERE r.run = ? AND r.rank >= ? AND r.rank < ?"
                " ORDER BY r.rank, e.seq",
                (run, start, start + size),
            ).fetchall()
            for row_id, _tenant, records in _grouped(rows):
                yield row_id, tuple(r.event_id for r in records)
        self._unrank(run)

    def states(self, aggregate: str, row_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Row id -> merged state of the day's rows among `row_ids` (deleted rows too: a
        deleted parent still names its children's tenant)."""
        wanted = sorted(set(row_ids))
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), CHUNK):
            part = wanted[start : start + CHUNK]
            marks = ",".join("?" * len(part))
            rows = self._conn.execute(
                "SELECT row_id, row_id, NULL, event_id, event_type, aggregate_version, position,"
                f" payload FROM events WHERE aggregate = ? AND deletes = 0 AND row_id IN ({marks})"
                " ORDER BY row_id, seq",
                [aggregate, *part],
            ).fetchall()
            for row_id, _tenant, records in _grouped(rows):
                out[row_id] = merged(records)
        return out

    def _rank(self, aggregate: str, by_tenant: bool, *, deleted: bool = False) -> tuple[int, int]:
        """Number the aggregate's rows in the order `chunks` returns them, under a run of
        their own (two iterations at once never share a numbering); (run, count)."""
        self._runs += 1
        run = self._runs
        with self._conn:
            rows = (
                "SELECT row_id, min(sort_key) AS sort_key FROM events"
                f" WHERE aggregate = ? GROUP BY row_id HAVING max(deletes) = {int(deleted)}"
            )
            if by_tenant:
                cursor = self._conn.execute(
                    "INSERT INTO ranked (run, aggregate, rank, row_id, tenant)"
                    " SELECT ?, ?, row_number() OVER"
                    " (ORDER BY t.tenant, c.sort_key, c.row_id) - 1, c.row_id, t.tenant"
                    f" FROM ({rows}) c JOIN tenants t"
                    " ON t.aggregate = ? AND t.row_id = c.row_id",
                    (run, aggregate, aggregate, aggregate),
                )
            else:
                cursor = self._conn.execute(
                    "INSERT INTO ranked (run, aggregate, rank, row_id, tenant)"
                    " SELECT ?, ?, row_number() OVER (ORDER BY c.sort_key, c.row_id) - 1,"
                    f" c.row_id, NULL FROM ({rows}) c",
                    (run, aggregate, aggregate),
                )
            return run, int(cursor.rowcount)

    def _unrank(self, run: int) -> None:
        with self._conn:
            self._conn.execute("DELETE FROM ranked WHERE run = ?", (run,))


def _grouped(
    rows: list[tuple[Any, ...]],
) -> Iterator[tuple[str, str | None, list[_Record]]]:
    """Consecutive rows of one row id (same first column) -> its records sorted as the fold
    applies them (aggregate version, then position; ties keep arrival order)."""
    current: tuple[Any, str, str | None] | None = None
    records: list[_Record] = []
    for rank, row_id, tenant, event_id, event_type, version, position, payload in rows:
        if current is not None and current[0] != rank:
            yield current[1], current[2], sorted(records, key=_apply_order)
            records = []
        current = (rank, row_id, tenant)
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
    """The order objects come in (aggregate, numeric id, id); `_sort_key` mirrors it in SQL."""
    (aggregate, row_id), _ = item
    return (aggregate, int(row_id) if row_id.isdigit() else -1, row_id)


def merged(records: Iterable[_Record]) -> dict[str, Any]:
    """The state of a row: its payloads in apply order, the latest value of a field wins."""
    state: dict[str, Any] = {}
    for r in records:
        state.update(r.payload)
    return state


def parent_ids(decl: CollectionDecl, state: Mapping[str, Any]) -> dict[str, str]:
    """Searchable parent -> the parent row's id, for each foreign key fully set in `state`."""
    out: dict[str, str] = {}
    for parent, fields in decl.parent_fields.items():
        values = [state.get(f) for f in fields]
        if all(v is not None for v in values):
            out[parent] = key_text(values)
    return out


def stored_value(decl: CollectionDecl, name: str, value: Any) -> Any:
    """A field's value as its property stores it (text of JSON where the type is unknown)."""
    if name in decl.json_text and not isinstance(value, str):
        return text_value(value)
    return value


def build(decl: CollectionDecl, row_id: str, records: list[_Record], day: str) -> SearchObject:
    """The object of one row from its records (already in apply order)."""
    state = merged(records)
    props = {
        name: stored_value(decl, name, state[name])
        for name in decl.properties
        if state.get(name) is not None
    }
    props[DAY] = day
    props[SOURCE_ID] = row_id
    parents = parent_ids(decl, state)
    refs = {
        r.name: object_uuid(r.target, parents[r.target])
        for r in decl.references
        if r.target in parents
    }
    return SearchObject(
        decl.aggregate,
        row_id,
        object_uuid(decl.aggregate, row_id),
        props,
        refs,
        parents,
        render(decl.text, state),
        state.get(decl.tenant_field) if decl.tenant_field else None,
        tuple(r.event_id for r in records),
    )
