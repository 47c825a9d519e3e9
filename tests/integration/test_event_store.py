"""The event store against a real Postgres: one conformance suite, run over a single connection
and over a pool (the two ways callers hand the store a database).

Every test uses its own uuid-suffixed aggregate ids, event types and saga ids, so tests share
one migrated database and can run again and again.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from itertools import zip_longest
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from strangler.db.migrations import migrate
from strangler.event_store._db import Source
from strangler.event_store.errors import (
    ConcurrencyError,
    EventStoreError,
    EventValidationError,
    SchemaConflictError,
)
from strangler.event_store.model import NewEvent, RecordedEvent, event_id_for
from strangler.event_store.reader import GlobalReader
from strangler.event_store.registry import EventTypeRegistry
from strangler.event_store.sagas import SagaStore, SagaTransitionError
from strangler.event_store.store import EventStore
from strangler.migration.folds import spec_folds
from strangler.settings import SAMPLE_SPEC
from strangler.spec import load_spec

pytestmark = pytest.mark.integration

T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)


FOLDS = spec_folds(load_spec(SAMPLE_SPEC))


def _store(source: Any, **options: Any) -> EventStore:
    """The store under test, with the sample spec's folds (load and snapshot need one)."""
    return EventStore(source, folds=FOLDS, **options)


@pytest.fixture(scope="session")
def es_url(postgres_url: str) -> str:
    migrate(postgres_url)
    return postgres_url


@pytest.fixture
def conn(es_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(es_url, autocommit=True) as c:
        yield c


@pytest.fixture(scope="session")
def pool(es_url: str) -> Iterator[ConnectionPool[Any]]:
    with ConnectionPool(
        es_url, min_size=1, max_size=4, kwargs={"autocommit": True}, open=True
    ) as p:
        yield p


@pytest.fixture(params=["connection", "pool"])
def source(
    request: pytest.FixtureRequest, conn: psycopg.Connection[Any], pool: ConnectionPool[Any]
) -> Source:
    return conn if request.param == "connection" else pool


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _customer_events(aggregate_id: str, first: int, count: int) -> list[NewEvent]:
    out = []
    for v in range(first, first + count):
        event_type = "CustomerRegistered" if v == 1 else "CustomerUpdated"
        payload: dict[str, Any] = (
            {"email": f"{aggregate_id}@example.com", "name": "Ada", "plan": "free"}
            if v == 1
            else {"name": f"Ada {v}", "plan": "pro" if v % 3 == 0 else "free", "logins": v}
        )
        out.append(
            NewEvent(
                event_id=event_id_for("customers", aggregate_id, f"v{v}"),
                aggregate_type="Customer",
                aggregate_id=aggregate_id,
                aggregate_version=v,
                event_type=event_type,
                payload=payload,
                occurred_at=T0 + timedelta(minutes=v),
            )
        )
    return out


def _document_events(aggregate_id: str, count: int) -> list[NewEvent]:
    out = []
    for v in range(1, count + 1):
        if v == 1:
            event_type, payload = "DocumentUploaded", {"title": "scan.pdf", "customer_id": "c1"}
        elif v % 5 == 0:
            event_type, payload = "DocumentStatusChanged", {"status": f"s{v}"}
        elif v % 7 == 0:
            event_type, payload = "ProcessingJobCompleted", {"job_id": v, "job_type": "thumb"}
        else:
            event_type = "OcrPageExtracted"
            payload = {"page_number": v, "text": "x" * v, "confidence": round(v / 100, 2)}
        out.append(
            NewEvent(
                event_id_for("documents", aggregate_id, f"v{v}"),
                "Document",
                aggregate_id,
                v,
                event_type,
                payload,
                T0 + timedelta(seconds=v),
            )
        )
    return out


def _count(conn: psycopg.Connection[Any], query: str, *params: Any) -> int:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row[0])


# -- append, outbox, idempotency ---------------------------------------------------------------


def test_append_writes_events_and_one_outbox_row_each(
    source: Source, conn: psycopg.Connection[Any]
) -> None:
    cid = _uid("cust")
    store = _store(source)
    late_evening = datetime(2024, 3, 1, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    events = _customer_events(cid, 1, 3)
    events = [*events[:2], _with_time(events[2], late_evening)]

    written = store.append(events, expected_version=0)

    assert [e.aggregate_version for e in written] == [1, 2, 3]
    assert [e.event_id for e in written] == [e.event_id for e in events]
    assert written[0].position < written[1].position < written[2].position
    assert store.read_stream("Customer", cid) == written
    assert store.version("Customer", cid) == 3
    rows = conn.execute(
        "SELECT o.event_id, o.position, o.topic, o.message_key, o.headers, o.payload, o.partition_day "
        "FROM eventstore.outbox o JOIN eventstore.events e USING (event_id) "
        "WHERE e.aggregate_id = %s ORDER BY o.position",
        (cid,),
    ).fetchall()
    assert [(r[0], r[1]) for r in rows] == [(e.event_id, e.position) for e in written]
    assert {r[2] for r in rows} == {"customer.events"}
    assert {r[3] for r in rows} == {cid}
    assert rows[0][4] == {
        "event_id": str(events[0].event_id),
        "event_type": "CustomerRegistered",
        "schema_version": "1",
        "occurred_at": events[0].occurred_at.isoformat(),
        "aggregate_type": "Customer",
        "aggregate_version": "1",
        "position": str(written[0].position),
    }
    assert rows[0][5]["payload"] == events[0].payload
    assert rows[0][5]["position"] == written[0].position
    assert [r[6] for r in rows] == [date(2024, 3, 1), date(2024, 3, 1), date(2024, 3, 2)]


_ENVELOPE_FROM_COLUMNS = """
SELECT o.payload = jsonb_build_object(
           'event_id', e.event_id::text, 'aggregate_type', e.aggregate_type,
           'aggregate_id', e.aggregate_id, 'aggregate_version', e.aggregate_version,
           'event_type', e.event_type, 'schema_version', e.schema_version,
           'occurred_at', o.headers ->> 'occurred_at', 'payload', e.payload,
           'metadata', e.metadata, 'position', e.position, 'recorded_at', e.recorded_at),
       o.message_key = e.aggregate_id AND o.position = e.position
FROM eventstore.outbox o JOIN eventstore.events e USING (event_id)
WHERE e.aggregate_id = ANY(%s)
"""


def test_outbox_envelope_is_the_stored_event_whatever_its_text(
    source: Source, conn: psycopg.Connection[Any]
) -> None:
    """The envelope is built in Python and written by COPY: every value, however awkward its
    text (tabs, newlines, backslashes, quotes, non-ASCII), must arrive as the event has it."""
    awkward = ["tab\there", "line\nbreak\r", "back\\slash \\N", "quote \" ' done", "ünïcødé ✓"]
    ids = [f"{_uid('odd')}-{text}" for text in awkward]
    events = [
        NewEvent(
            uuid.uuid4(),
            "Customer",
            aid,
            1,
            "CustomerRegistered",
            {"name": text, "nested": {"list": [text, 1.5, None]}},
            T0,
            metadata={"source_table": text},
        )
        for aid, text in zip(ids, awkward, strict=True)
    ]
    assert _store(source).append_batch(events).appended == len(events)
    checks = conn.execute(_ENVELOPE_FROM_COLUMNS, (ids,)).fetchall()
    assert checks == [(True, True)] * len(events)
    stored = conn.execute(
        "SELECT aggregate_id, payload FROM eventstore.events WHERE aggregate_id = ANY(%s)", (ids,)
    ).fetchall()
    assert dict(stored) == {e.aggregate_id: e.payload for e in events}


def _with_time(event: NewEvent, at: datetime) -> NewEvent:
    return NewEvent(
        event.event_id,
        event.aggregate_type,
        event.aggregate_id,
        event.aggregate_version,
        event.event_type,
        event.payload,
        at,
        event.schema_version,
        event.metadata,
    )


def test_reappending_same_event_ids_is_a_no_op(
    source: Source, conn: psycopg.Connection[Any]
) -> None:
    cid = _uid("cust")
    store = _store(source)
    events = _customer_events(cid, 1, 4)
    first = store.append(events, expected_version=0)

    assert store.append(events, expected_version=0) == []
    assert store.append(events) == []
    assert store.append(events[:2], expected_version=0) == []
    assert store.append_batch(events).appended == 0

    more = store.append(events + _customer_events(cid, 5, 2), expected_version=0)
    assert [e.aggregate_version for e in more] == [5, 6]
    assert store.read_stream("Customer", cid)[:4] == first
    assert _count(conn, "SELECT count(*) FROM eventstore.events WHERE aggregate_id = %s", cid) == 6
    assert (
        _count(
            conn,
            "SELECT count(*) FROM eventstore.outbox o JOIN eventstore.events e USING (event_id) "
            "WHERE e.aggregate_id = %s",
            cid,
        )
        == 6
    )


def test_wrong_expected_version_raises_concurrency_error(source: Source) -> None:
    cid = _uid("cust")
    store = _store(source)
    store.append(_customer_events(cid, 1, 2), expected_version=0)

    stale = [NewEvent(uuid.uuid4(), "Customer", cid, 2, "CustomerUpdated", {"name": "Eve"}, T0)]
    with pytest.raises(ConcurrencyError) as info:
        store.append(stale, expected_version=1)
    assert str(info.value) == (
        f"Wrong expected version for Customer '{cid}': expected version 1, actual version 2"
    )
    assert (info.value.expected, info.value.actual) == (1, 2)

    other = [
        NewEvent(uuid.uuid4(), "Customer", cid, 2, "CustomerUpdated", {"name": "Bob"}, T0),
    ]
    with pytest.raises(
        ConcurrencyError, match=f"Customer '{cid}': expected version 1, actual version 2"
    ):
        store.append(other)
    assert store.version("Customer", cid) == 2


def test_concurrent_writers_with_same_expected_version_one_wins(es_url: str) -> None:
    cid = _uid("cust")
    with psycopg.connect(es_url, autocommit=True) as c0:
        _store(c0).append(_customer_events(cid, 1, 1), expected_version=0)
    with psycopg.connect(es_url) as a, psycopg.connect(es_url, autocommit=True) as b:
        mine = [NewEvent(uuid.uuid4(), "Customer", cid, 2, "CustomerUpdated", {"by": "a"}, T0)]
        theirs = [NewEvent(uuid.uuid4(), "Customer", cid, 2, "CustomerUpdated", {"by": "b"}, T0)]
        _begin_append(a, mine)
        errors: list[BaseException] = []

        def second() -> None:
            try:
                _store(b).append(theirs, expected_version=1)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                errors.append(exc)

        t = threading.Thread(target=second)
        t.start()
        t.join(0.5)
        assert t.is_alive(), "the second writer must wait on the stream lock"
        a.commit()
        t.join(10)
    assert len(errors) == 1 and isinstance(errors[0], ConcurrencyError)
    assert "expected version 1, actual version 2" in str(errors[0])


def test_event_id_reused_for_another_event_is_refused(source: Source) -> None:
    cid = _uid("cust")
    store = _store(source)
    (first,) = _customer_events(cid, 1, 1)
    store.append([first], expected_version=0)
    clash = NewEvent(first.event_id, "Customer", _uid("cust"), 1, "CustomerRegistered", {}, T0)
    with pytest.raises(EventStoreError, match="already stored"):
        store.append([clash])
    with pytest.raises(EventStoreError, match="already stored"):
        store.append_batch([clash])


def test_append_joins_the_callers_transaction(es_url: str) -> None:
    cid = _uid("cust")
    with psycopg.connect(es_url) as c:
        c.execute("SELECT 1")
        _store(c).append(_customer_events(cid, 1, 2), expected_version=0)
        c.rollback()
        assert _store(c).version("Customer", cid) == 0
        c.execute("SELECT 1")
        _store(c).append(_customer_events(cid, 1, 2), expected_version=0)
        c.commit()
    with psycopg.connect(es_url) as c:
        assert _store(c).version("Customer", cid) == 2


def test_naive_timestamps_are_refused(source: Source) -> None:
    (event,) = _customer_events(_uid("cust"), 1, 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        _store(source).append([_with_time(event, datetime(2024, 3, 1, 8, 0))])


# -- batch ----------------------------------------------------------------------------------------


def test_append_batch_many_aggregates_idempotent(
    source: Source, conn: psycopg.Connection[Any]
) -> None:
    tag = _uid("batch")
    ids = [f"{tag}-{n}" for n in range(200)]
    events = [e for cid in ids for e in _customer_events(cid, 1, 5)]
    store = _store(source, snapshot_every=4)

    result = store.append_batch(events)
    assert (result.appended, result.duplicates, result.snapshots) == (1000, 0, 200)
    again = store.append_batch(events + _customer_events(ids[0], 6, 1))
    assert (again.appended, again.duplicates) == (1, 1000)

    n_events = _count(
        conn, "SELECT count(*) FROM eventstore.events WHERE aggregate_id LIKE %s", f"{tag}-%"
    )
    n_outbox = _count(
        conn,
        "SELECT count(*) FROM eventstore.outbox WHERE message_key LIKE %s",
        f"{tag}-%",
    )
    assert n_events == n_outbox == 1001
    rows = conn.execute(
        "SELECT aggregate_id, array_agg(aggregate_version ORDER BY position) "
        "FROM eventstore.events WHERE aggregate_id LIKE %s GROUP BY aggregate_id",
        (f"{tag}-%",),
    ).fetchall()
    assert all(versions == sorted(versions) for _, versions in rows)


def test_append_batch_refuses_a_taken_version_and_writes_nothing(
    source: Source, conn: psycopg.Connection[Any]
) -> None:
    cid, fresh = _uid("cust"), _uid("cust")
    store = _store(source)
    store.append(_customer_events(cid, 1, 3), expected_version=0)
    clash = NewEvent(uuid.uuid4(), "Customer", cid, 2, "CustomerUpdated", {"x": 1}, T0)
    with pytest.raises(
        ConcurrencyError, match=f"Customer '{cid}': expected version 1, actual version 3"
    ):
        store.append_batch([*_customer_events(fresh, 1, 2), clash])
    assert store.version("Customer", fresh) == 0


# -- snapshots --------------------------------------------------------------------------------


def test_customer_load_with_snapshots_equals_full_replay(source: Source) -> None:
    cid = _uid("cust")
    store = _store(source, snapshot_every=50)
    version = 0
    while version < 123:
        chunk = _customer_events(cid, version + 1, min(7, 123 - version))
        store.append(chunk, expected_version=version)
        version += len(chunk)

    loaded = store.load("Customer", cid)
    replayed = store.load("Customer", cid, use_snapshots=False)

    assert loaded.state == replayed.state
    assert loaded.version == replayed.version == 123
    assert loaded.snapshot_version == 105
    assert loaded.replayed == 18
    assert replayed.snapshot_version is None and replayed.replayed == 123
    assert loaded.state["plan"] == "pro" and loaded.state["logins"] == 123


def test_document_load_with_snapshots_equals_full_replay(source: Source) -> None:
    docs = [_uid("doc") for _ in range(3)]
    store = _store(source, snapshot_every=10)
    result = store.append_batch([e for d in docs for e in _document_events(d, 37)])
    assert result.snapshots == 3

    for d in docs:
        loaded = store.load("Document", d)
        replayed = store.load("Document", d, use_snapshots=False)
        assert loaded.state == replayed.state
        assert loaded.snapshot_version == 37 and loaded.replayed == 0
        assert replayed.replayed == 37
    assert store.snapshot("Document", docs[0]) == 37
    store.append(_document_events(docs[0], 45)[37:], expected_version=37)
    loaded = store.load("Document", docs[0])
    assert loaded.snapshot_version == 45
    assert loaded.state == store.load("Document", docs[0], use_snapshots=False).state


def test_snapshot_is_ignored_once_its_events_are_gone(
    source: Source, conn: psycopg.Connection[Any]
) -> None:
    cid = _uid("cust")
    store = _store(source, snapshot_every=5)
    store.append(_customer_events(cid, 1, 12), expected_version=0)
    assert store.load("Customer", cid).snapshot_version == 12
    conn.execute(
        "DELETE FROM eventstore.events WHERE aggregate_id = %s AND aggregate_version > 6", (cid,)
    )
    loaded = store.load("Customer", cid)
    assert loaded.version == 6
    assert loaded.snapshot_version is None
    assert loaded.state == store.load("Customer", cid, use_snapshots=False).state


def test_no_snapshot_over_a_gap(source: Source) -> None:
    cid = _uid("cust")
    store = _store(source, snapshot_every=3)
    result = store.append_batch(_customer_events(cid, 2, 5))
    assert result.snapshots == 0
    assert store.snapshot("Customer", cid) is None
    assert store.load("Customer", cid).contiguous is False


# -- global reader -----------------------------------------------------------------------------


def _begin_append(conn: psycopg.Connection[Any], events: list[NewEvent]) -> list[RecordedEvent]:
    """Append inside ``conn``'s transaction (opened here if idle) and leave it uncommitted."""
    conn.execute("SELECT 1")
    return _store(conn).append(events)


def _mine(events: list[RecordedEvent], ids: set[str]) -> list[RecordedEvent]:
    return [e for e in events if e.aggregate_id in ids]


def _drain(
    reader: GlobalReader, after: int, wait_s: float = 0.0
) -> tuple[list[RecordedEvent], int]:
    out: list[RecordedEvent] = []
    while True:
        batch = reader.read_all(after, 500, wait_s=wait_s)
        wait_s = 0.0
        if not batch:
            return out, after
        out.extend(batch)
        after = batch[-1].position


def _start(conn: psycopg.Connection[Any]) -> int:
    return _count(conn, "SELECT coalesce(max(position), 0) FROM eventstore.events")


def test_reader_never_skips_a_lower_position_that_commits_last(
    es_url: str, conn: psycopg.Connection[Any]
) -> None:
    """Writer A takes the lower position and commits last; a reader polling the whole time
    sees every event once, in position order."""
    a_id, b_id = _uid("cust"), _uid("cust")
    ids = {a_id, b_id}
    reader = GlobalReader(conn)
    cursor = _start(conn)
    _, cursor = _drain(reader, cursor)

    polled: list[RecordedEvent] = []
    stop = threading.Event()

    def poll() -> None:
        with psycopg.connect(es_url, autocommit=True) as rc:
            bg = GlobalReader(rc)
            after = cursor
            while not stop.is_set():
                batch = bg.read_all(after, 100)
                polled.extend(batch)
                if batch:
                    after = batch[-1].position
                stop.wait(0.005)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        with psycopg.connect(es_url) as wa, psycopg.connect(es_url) as wb:
            (ea,) = _begin_append(wa, _customer_events(a_id, 1, 1))
            (eb,) = _begin_append(wb, _customer_events(b_id, 1, 1))
            assert ea.position < eb.position
            wb.commit()

            seen, cursor_after = _drain(reader, cursor)
            assert _mine(seen, ids) == [], "B's event must wait for A's lower position"
            assert reader.safe_position < ea.position
            visible = _count(
                conn, "SELECT count(*) FROM eventstore.events WHERE event_id = %s", eb.event_id
            )
            assert visible == 1, "B's event is committed and visible, yet not returned"

            wa.commit()
        seen, _ = _drain(reader, cursor_after, wait_s=10)
        assert [e.event_id for e in _mine(seen, ids)] == [ea.event_id, eb.event_id]
        deadline = time.monotonic() + 10
        while len(_mine(polled, ids)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        poller.join(10)
    mine = _mine(polled, ids)
    assert [e.event_id for e in mine] == [ea.event_id, eb.event_id]
    positions = [e.position for e in polled]
    assert positions == sorted(set(positions)), "every event exactly once, in position order"


def test_reader_waits_when_xid_order_and_position_order_disagree(
    es_url: str, conn: psycopg.Connection[Any]
) -> None:
    """B claims its xid first but takes its position after A: the plain
    ``writer_xid < xmin`` filter would hand out B's event and skip A's; this reader does not."""
    a_id, b_id = _uid("cust"), _uid("cust")
    ids = {a_id, b_id}
    reader = GlobalReader(conn)
    cursor = _start(conn)
    _, cursor = _drain(reader, cursor)
    with psycopg.connect(es_url) as wa, psycopg.connect(es_url) as wb:
        b_xid = _xid(wb)
        (ea,) = _begin_append(wa, _customer_events(a_id, 1, 1))
        (eb,) = _begin_append(wb, _customer_events(b_id, 1, 1))
        assert ea.position < eb.position
        assert b_xid < _xid(wa), "B's xid is older, so B's event passes writer_xid < xmin"
        wb.commit()

        seen, cursor_after = _drain(reader, cursor)
        assert _mine(seen, ids) == []
        wa.commit()
    seen, _ = _drain(reader, cursor_after, wait_s=10)
    assert [e.event_id for e in _mine(seen, ids)] == [ea.event_id, eb.event_id]


def _xid(conn: psycopg.Connection[Any]) -> int:
    return _count(conn, "SELECT pg_current_xact_id()::text::bigint")


def test_reader_iterates_in_position_order_with_wait(source: Source, es_url: str) -> None:
    cid = _uid("cust")
    with psycopg.connect(es_url, autocommit=True) as rc:
        start = _start(rc)
        written = _store(source).append(_customer_events(cid, 1, 5), expected_version=0)
        fresh = GlobalReader(rc)
        assert _mine(fresh.read_all(start, 1000, wait_s=5), {cid}) == written
        it = GlobalReader(rc).iter_all(
            start, batch_size=2, idle_timeout_s=0.3, poll_interval_s=0.02
        )
        assert _mine(list(it), {cid}) == written


# -- registry ----------------------------------------------------------------------------------

CUSTOMER_SCHEMA = {
    "type": "object",
    "required": ["email", "name"],
    "properties": {
        "email": {"type": "string", "format": "email"},
        "name": {"type": "string", "minLength": 1},
        "plan": {"enum": ["free", "pro"]},
    },
}


def test_registry_validates_and_names_failing_fields(source: Source, es_url: str) -> None:
    event_type = _uid("CustomerRegistered")
    registry = EventTypeRegistry(source)
    registry.register(event_type, 1, CUSTOMER_SCHEMA, "a customer signed up")
    registry.register(event_type, 1, CUSTOMER_SCHEMA)

    ok = NewEvent(
        uuid.uuid4(), "Customer", "c", 1, event_type, {"email": "a@b.example", "name": "A"}, T0
    )
    registry.validate(ok)
    bad = NewEvent(uuid.uuid4(), "Customer", "c", 1, event_type, {"name": "", "plan": "gold"}, T0)
    with pytest.raises(EventValidationError) as info:
        registry.validate(bad)
    assert [(e.path, e.rule) for e in info.value.errors] == [
        ("payload.email", "required"),
        ("payload.name", "minLength"),
        ("payload.plan", "enum"),
    ]
    assert str(info.value).startswith(f"{event_type} v1 is invalid: payload.email: required: ")

    with psycopg.connect(es_url) as c:
        cold = EventTypeRegistry(c)
        assert cold.schema(event_type, 1) == CUSTOMER_SCHEMA
        assert cold.preload() >= 1
    unknown = NewEvent(uuid.uuid4(), "Customer", "c", 1, event_type, {}, T0, schema_version=2)
    with pytest.raises(EventValidationError, match="event_type: registered: no schema registered"):
        registry.validate(unknown)
    with pytest.raises(SchemaConflictError, match="register the change as a new schema version"):
        registry.register(event_type, 1, {**CUSTOMER_SCHEMA, "required": ["email"]})


# -- sagas -------------------------------------------------------------------------------------


def test_saga_lifecycle_with_optimistic_locking(source: Source) -> None:
    sagas = SagaStore(source)
    saga_type = _uid("PartitionBackfill")
    saga = sagas.start(saga_type, "events", {"partition": "2024-03-01"})
    assert (saga.status, saga.version) == ("running", 1)

    moved = sagas.advance(saga, "kafka", {**saga.state, "events": 10})
    assert (moved.step, moved.version, moved.state["events"]) == ("kafka", 2, 10)
    with pytest.raises(ConcurrencyError) as info:
        sagas.advance(saga, "clickhouse")
    assert str(info.value) == (
        f"Wrong expected version for saga '{saga.saga_id}': expected version 1, actual version 2"
    )

    undoing = sagas.compensate(moved, "undo-kafka")
    undoing = sagas.compensate(undoing, "undo-events")
    done = sagas.compensated(undoing)
    assert (done.status, done.step, done.version) == ("compensated", "undo-events", 5)
    assert done.finished_at is not None
    with pytest.raises(SagaTransitionError, match="is compensated; cannot go to running"):
        sagas.advance(done, "again")
    assert sagas.get(saga.saga_id) == done


def test_saga_start_is_idempotent_and_complete_is_final(source: Source) -> None:
    sagas = SagaStore(source)
    sid = uuid.uuid4()
    saga_type = _uid("Rollback")
    first = sagas.start(saga_type, "plan", saga_id=sid)
    assert sagas.start(saga_type, "plan", {"ignored": True}, saga_id=sid) == first
    with pytest.raises(SagaTransitionError, match="already exists with type"):
        sagas.start("Other", "plan", saga_id=sid)
    completed = sagas.complete(first, {"rows": 3})
    assert (completed.status, completed.state) == ("completed", {"rows": 3})
    with pytest.raises(SagaTransitionError):
        sagas.fail(completed, "too late")


def test_reader_under_many_interleaved_writers_sees_each_event_once_in_order(es_url: str) -> None:
    """Writers hold their transactions open for random times (single appends and multi-row
    batches whose positions interleave); a reader polling throughout must return every
    committed event exactly once, in position order, and nothing from rolled-back ones."""
    tag = _uid("stress")
    committed: list[uuid.UUID] = []
    rolled_back: list[uuid.UUID] = []
    lock = threading.Lock()
    with psycopg.connect(es_url, autocommit=True) as c:
        start = _start(c)

    def write(worker: int) -> None:
        rng = random.Random(worker)
        with psycopg.connect(es_url) as wc:
            store = _store(wc)
            for n in range(12):
                cid = f"{tag}-{worker}-{n}"
                events = _customer_events(cid, 1, rng.randint(1, 4))
                wc.execute("SELECT 1")
                if rng.random() < 0.5:
                    store.append(events, expected_version=0)
                else:
                    other = _customer_events(f"{cid}-b", 1, 3)
                    mixed = [e for pair in zip_longest(events, other) for e in pair if e]
                    store.append_batch(mixed)
                    events = mixed
                time.sleep(rng.random() * 0.05)
                if rng.random() < 0.15:
                    wc.rollback()
                    with lock:
                        rolled_back.extend(e.event_id for e in events)
                else:
                    wc.commit()
                    with lock:
                        committed.extend(e.event_id for e in events)

    polled: list[RecordedEvent] = []
    stop = threading.Event()

    def poll() -> None:
        with psycopg.connect(es_url, autocommit=True) as rc:
            reader = GlobalReader(rc)
            after = start
            while not stop.is_set():
                batch = reader.read_all(after, 50)
                polled.extend(batch)
                if batch:
                    after = batch[-1].position
                stop.wait(0.002)

    poller = threading.Thread(target=poll)
    poller.start()
    writers = [threading.Thread(target=write, args=(w,)) for w in range(6)]
    for t in writers:
        t.start()
    for t in writers:
        t.join(60)
    deadline = time.monotonic() + 15
    expected = set(committed)
    while time.monotonic() < deadline:
        if expected <= {e.event_id for e in polled}:
            break
        time.sleep(0.05)
    stop.set()
    poller.join(10)

    mine = [e for e in polled if e.aggregate_id.startswith(tag)]
    assert len(expected) > 50 and rolled_back
    assert [e.event_id for e in mine if e.event_id in expected] == [e.event_id for e in mine]
    assert {e.event_id for e in mine} == expected
    positions = [e.position for e in polled]
    assert positions == sorted(set(positions)), "every event exactly once, in position order"
