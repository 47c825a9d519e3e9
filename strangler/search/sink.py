"""Day D -> Weaviate: read D's events, embed (cached), upsert, delete what the source dropped.

Convergence without a staging copy: objects have deterministic UUIDs (uuid5 of aggregate type
and id), a batch insert replaces an object whole (properties, vector and its references, which
are set inline so an object never sits half-linked), and every object written by a run carries
that run's `load_token`. After the upload, objects of D with another token are exactly those
the source no longer has (or that Weaviate rejected this time, which are recorded in
failed_entities), and are deleted. Re-running D therefore leaves the same objects.

A multi-tenant collection (strangler.search.tenants) gets every write in the object's tenant:
upserts and references per tenant, stale objects deleted in every tenant (a dropped object's
customer may have nothing else on D). A page's customer comes from its document: the day's own
DocumentUploaded, else the event store; a page whose customer is unknown is a failure
(`tenant_unresolved`), never dropped silently.

Encoding runs in a worker thread, a bounded queue ahead of the uploads (PyTorch and ONNX
Runtime release the GIL), so model time and network time overlap and at most a few encode
batches of vectors are in memory at once.

Memory stays flat as a day grows: the day's events are spilled to disk by `DayFold`, and each
type is loaded one encode batch of objects at a time (references, rejections and the dangling
targets per batch; the dangling targets themselves spill to a temporary SQLite database). What
is kept per object is small: the document -> customer map of a multi-tenant load, the failures,
and the per-event outcomes handed back for the bookkeeping.
"""

from __future__ import annotations

import hashlib
import itertools
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import psycopg
import weaviate
from confluent_kafka import TopicPartition
from weaviate.classes.data import DataObject, DataReference
from weaviate.classes.query import Filter
from weaviate.exceptions import WeaviateBaseError, WeaviateInsertManyAllFailedError

from strangler.migration.day_events import read_day_from_store
from strangler.migration.events import TOPICS
from strangler.migration.kafka_clients import KafkaClients
from strangler.migration.kafka_records import OffsetsGone, load_offset_ranges, read_ranges
from strangler.search import tracking
from strangler.search.embedding_cache import CachedEncoder, EncodeStats
from strangler.search.objects import DayFold, SearchObject, Skipped
from strangler.search.schema import (
    DAY,
    LOAD_TOKEN,
    REFERENCE_KEYS,
    TYPES,
    CollectionNames,
    SchemaOptions,
    SchemaReport,
    ensure_schema,
)
from strangler.search.tenants import (
    ensure_tenants,
    is_multi_tenant,
    place,
    present,
    scoped,
    scopes,
)

CONSUMER_GROUP = "search-service"
_DELETE_ROUNDS = 1_000
_KEY_CHUNK = 5_000
"""Ids per event-store lookup, Weaviate existence check and failed_entities resolve."""


@dataclass(frozen=True)
class SinkOptions:
    names: CollectionNames = field(default_factory=CollectionNames)
    schema: SchemaOptions = field(default_factory=SchemaOptions)
    upload_batch: int = 500
    encode_batch: int = 1_024
    max_failure_ratio: float = 0.01
    """The run fails when failures / objects of the day exceed this (after recording them)."""
    consumer_group: str = CONSUMER_GROUP
    version: str = "1"


@dataclass
class DayRead:
    fold: DayFold
    source: str
    """kafka | event_store"""
    positions: list[tuple[str, int, int, int]] = field(default_factory=list)
    note: str = ""


@dataclass
class TypeResult:
    aggregate_type: str
    collection: str
    objects: int = 0
    loaded: int = 0
    references: int = 0
    dangling_references: int = 0
    deleted: int = 0
    failed: int = 0
    tenants: int = 0
    """Tenants written to (0: a single-tenant collection)."""
    seconds: float = 0.0
    encode: EncodeStats = field(default_factory=EncodeStats)

    @property
    def vectors_per_s(self) -> float:
        return self.loaded / self.seconds if self.seconds > 0 else 0.0


@dataclass
class DayResult:
    day: str
    source: str
    events: int
    duplicates: int
    per_type: dict[str, TypeResult]
    failures: list[tracking.Failure]
    schema: SchemaReport
    model: str
    dimension: int
    seconds: float
    max_failure_ratio: float

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def objects(self) -> int:
        return sum(t.objects for t in self.per_type.values())

    @property
    def exceeded(self) -> bool:
        return self.failed > self.max_failure_ratio * max(self.objects, 1)


def read_day(
    conn: psycopg.Connection[Any],
    kafka: KafkaClients | None,
    day: str,
    consumer_group: str = CONSUMER_GROUP,
) -> DayRead:
    """D's Customer/Document/OcrPage events: Kafka's recorded ranges, else the event store.

    The caller owns the returned fold and closes it (its events are spilled to disk)."""
    fold = DayFold(day)
    try:
        return _read_day(conn, kafka, day, consumer_group, fold)
    except BaseException:
        fold.close()
        raise


def _read_day(
    conn: psycopg.Connection[Any],
    kafka: KafkaClients | None,
    day: str,
    consumer_group: str,
    fold: DayFold,
) -> DayRead:
    note = ""
    if kafka is not None:
        topics = [kafka.topic(TOPICS[t]) for t in TYPES]
        ranges = load_offset_ranges(conn, day, topics)
        if ranges:
            consumer = kafka.consumer(consumer_group)
            try:
                for batch in read_ranges(consumer, ranges, day):
                    fold.add(batch)
                positions = _commit(
                    consumer, [(r.topic, r.kafka_partition, r.end_offset) for r in ranges]
                )
                return DayRead(fold, "kafka", positions)
            except OffsetsGone as gone:
                # Start over from the event store: the partial fold must not count twice.
                with fold:
                    fold = DayFold(day)
                note = f"fell back to the event store: {gone}"
            finally:
                consumer.close()
        else:
            note = "no Kafka offset ranges recorded for the day"
    try:
        for batch in read_day_from_store(conn, day, list(TYPES)):
            fold.add(batch)
        conn.commit()
    except BaseException:
        fold.close()
        raise
    return DayRead(fold, "event_store", note=note)


def _commit(consumer: Any, ends: list[tuple[str, int, int]]) -> list[tuple[str, int, int, int]]:
    """Commit the day's end offsets for the group where ahead of its position; report lag."""
    tps = [TopicPartition(t, p) for t, p, _ in ends]
    committed = {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(tps, timeout=10)}
    ahead = [
        TopicPartition(t, p, end) for t, p, end in ends if end > max(committed.get((t, p), -1), 0)
    ]
    if ahead:
        consumer.commit(offsets=ahead, asynchronous=False)
    positions = []
    for t, p, end in ends:
        done = max(committed.get((t, p), -1), end)
        _low, high = consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)
        positions.append((t, p, done, max(high, done)))
    return positions


def load_day(
    client: weaviate.WeaviateClient,
    encoder: CachedEncoder,
    read: DayRead,
    *,
    run_token: str,
    options: SinkOptions,
    types: Sequence[str] = TYPES,
    log: Callable[[str], None] = lambda _m: None,
    conn: psycopg.Connection[Any] | None = None,
) -> tuple[
    dict[str, TypeResult], list[tracking.Failure], list[tuple[uuid.UUID, str, float, str | None]]
]:
    """Upsert D's objects, delete D's stale ones; returns results, failures, event outcomes.

    `conn` (the event store) resolves the customer of pages whose document is not of D; only
    multi-tenant collections need it.
    """
    fold = read.fold
    skipped = fold.skipped()
    failures = [_skipped_failure(options.names, s) for s in skipped if s.aggregate_type in types]
    outcomes: list[tuple[uuid.UUID, str, float, str | None]] = [
        (e, "skipped", 0.0, s.reason) for s in skipped for e in s.event_ids
    ]
    results: dict[str, TypeResult] = {}
    for atype in types:
        customers: Mapping[str, Any] | None = None
        if is_multi_tenant(client.collections.get(options.names.of(atype))):
            # Only a page needs another aggregate's customer: its document's.
            customers = (
                _document_customers(conn, fold.stream("Document"), fold.stream(atype))
                if atype == "OcrPage"
                else {}
            )
        result, type_failures, type_outcomes = _load_type(
            client, encoder, atype, fold, run_token, options, customers
        )
        results[atype] = result
        failures.extend(type_failures)
        outcomes.extend(type_outcomes)
        log(
            f"{result.collection}: {result.loaded}/{result.objects} upserted, {result.failed} failed,"
            f" {result.deleted} stale deleted, {result.vectors_per_s:.0f} vectors/s"
            f" ({result.encode.cache_hits} cached, {result.encode.encoded} encoded)"
        )
    return results, failures, outcomes


def _document_customers(
    conn: psycopg.Connection[Any] | None,
    documents: Iterable[SearchObject],
    objs: Iterable[SearchObject],
) -> dict[str, Any]:
    """Document id -> customer id for the objects' documents: D's own documents first (free),
    the rest from their DocumentUploaded in the event store (a page can be extracted days after
    its document was uploaded). Only this map is kept, never the objects (both are streamed)."""
    known: dict[str, Any] = {d.aggregate_id: d.properties.get("customer_id") for d in documents}
    wanted = sorted(
        {
            str(o.properties["document_id"])
            for o in objs
            if o.aggregate_type == "OcrPage" and o.properties.get("document_id") is not None
        }
        - set(known)
    )
    if wanted and conn is not None:
        for start in range(0, len(wanted), _KEY_CHUNK):
            rows = conn.execute(
                "SELECT DISTINCT ON (aggregate_id) aggregate_id, payload -> 'customer_id'"
                " FROM eventstore.events WHERE aggregate_type = 'Document'"
                " AND event_type = 'DocumentUploaded' AND aggregate_id = ANY(%s)"
                " ORDER BY aggregate_id, aggregate_version DESC",
                (wanted[start : start + _KEY_CHUNK],),
            ).fetchall()
            known.update({str(r[0]): r[1] for r in rows})
        conn.commit()
    return known


Placed = tuple[str | None, SearchObject]
"""An object with its tenant (None: a single-tenant collection)."""


def _parts(chunk: list[Placed], size: int) -> Iterator[tuple[str | None, int, list[SearchObject]]]:
    """(tenant, start, objects): runs of one tenant (None: single-tenant), at most `size` long."""
    start = 0
    while start < len(chunk):
        tenant = chunk[start][0]
        end = start + 1
        while end < len(chunk) and end - start < size and chunk[end][0] == tenant:
            end += 1
        yield tenant, start, [o for _t, o in chunk[start:end]]
        start = end


def _load_type(
    client: weaviate.WeaviateClient,
    encoder: CachedEncoder,
    atype: str,
    fold: DayFold,
    run_token: str,
    options: SinkOptions,
    customers: Mapping[str, Any] | None = None,
) -> tuple[TypeResult, list[tracking.Failure], list[tuple[uuid.UUID, str, float, str | None]]]:
    """One type, one encode batch of objects at a time (`customers` given: multi-tenant)."""
    name = options.names.of(atype)
    day = fold.day
    collection = client.collections.get(name)
    result = TypeResult(atype, name, objects=fold.count(atype))
    failures: list[tracking.Failure] = []
    failed_ids: set[str] = set()
    if customers is not None:
        # A first pass places every object; the upload pass then reads them grouped by tenant
        # (stable), so uploads fill whole per-tenant batches.
        fold.clear_tenants(atype)
        tenants: set[str] = set()
        for chunk in fold.chunks(atype, options.encode_batch):
            placement = place(atype, (o for _t, o in chunk), customers, day)
            for _t, o in chunk:
                if o.aggregate_id in placement.unresolved:
                    failed_ids.add(o.aggregate_id)
                    failures.append(
                        tracking.Failure(
                            name,
                            o.aggregate_id,
                            "tenant_unresolved",
                            placement.unresolved[o.aggregate_id],
                            _json_safe(o.properties),
                            o.event_ids,
                        )
                    )
            fold.assign_tenants(atype, placement.tenants.items())
            tenants.update(placement.tenants.values())
        result.tenants = len(tenants)
        ensure_tenants(collection, tenants)
    references = 0
    with _Targets() as targets:
        started = time.perf_counter()
        chunks = fold.chunks(atype, options.encode_batch, by_tenant=customers is not None)
        for chunk, vectors, stats in _encoded(encoder, chunks):
            result.encode.add(stats)
            for tenant, start, part in _parts(chunk, options.upload_batch):
                handle = scoped(collection, tenant)
                data = [
                    DataObject(
                        properties={
                            **o.properties,
                            LOAD_TOKEN: run_token,
                            "content_hash": hashlib.sha256(o.text.encode()).hexdigest()[:32],
                        },
                        uuid=o.uuid,
                        vector=vectors[start + i].tolist(),
                    )
                    for i, o in enumerate(part)
                ]
                rejected = _insert(handle, data)
                del data
                for index, message in rejected.items():
                    o = part[index]
                    failed_ids.add(o.aggregate_id)
                    failures.append(
                        tracking.Failure(
                            name,
                            o.aggregate_id,
                            "weaviate_rejected",
                            message,
                            _json_safe(o.properties),
                            o.event_ids,
                        )
                    )
                linked = [o for i, o in enumerate(part) if i not in rejected and o.references]
                if tenant is not None:
                    linked = _with_present_targets(client, options.names, tenant, linked)
                ref_failures = _link(handle, linked)
                for o, message in ref_failures:
                    failed_ids.add(o.aggregate_id)
                    failures.append(
                        tracking.Failure(
                            name,
                            o.aggregate_id,
                            "reference_rejected",
                            message,
                            {
                                **_json_safe(o.properties),
                                "references": {k: str(v) for k, v in o.references.items()},
                            },
                            o.event_ids,
                        )
                    )
            # An object fails only in its own chunk, so the chunk's survivors are final.
            loaded = [(t, o) for t, o in chunk if o.aggregate_id not in failed_ids]
            references += sum(len(o.references) for _t, o in loaded)
            targets.add(
                (options.names.of(REFERENCE_KEYS[ref][0]), t, target)
                for t, o in loaded
                for ref, target in o.references.items()
            )
        result.seconds = time.perf_counter() - started
        result.failed = len(failed_ids)
        result.loaded = result.objects - result.failed
        result.references = references
        result.deleted = sum(_delete_stale(h, day, run_token) for _t, h in scopes(client, name))
        result.dangling_references = _dangling(client, targets)
    share_ms = 1000.0 * result.seconds / max(result.objects, 1)
    errors = {f.source_key: f.reason for f in failures}
    outcomes: list[tuple[uuid.UUID, str, float, str | None]] = [
        (e, "failed" if aid in errors else "succeeded", share_ms, errors.get(aid))
        for aid, event_ids in fold.keys(atype)
        for e in event_ids
    ]
    return result, failures, outcomes


def _insert(collection: Any, data: list[DataObject[Any, Any]]) -> dict[int, str]:
    """Upsert a batch; index -> Weaviate's message for each rejected object."""
    try:
        response = collection.data.insert_many(data)
    except WeaviateInsertManyAllFailedError as exc:
        if len(data) == 1:
            return {0: _message(exc)}
        # All rejected: retry one by one so each object gets its own message.
        out: dict[int, str] = {}
        for i, obj in enumerate(data):
            single = _insert(collection, [obj])
            if 0 in single:
                out[i] = single[0]
        return out
    return {i: e.message for i, e in response.errors.items()}


def _message(exc: Exception) -> str:
    text = str(exc)
    marker = "Here is the set of all errors: "
    return text.split(marker, 1)[1].strip() if marker in text else text


def _link(collection: Any, objs: list[SearchObject]) -> list[tuple[SearchObject, str]]:
    """Add the objects' references (after the upsert, which replaced the object and cleared its
    old ones, so re-adding never duplicates); returns the rejected ones with the message.

    Inline references would be atomic, but Weaviate rejects an inline reference whose target
    object does not exist yet, and a target may live in a day not loaded yet (a backfill of
    day D before the customer's day). Batch references are accepted and resolve once the
    target arrives; until then they count as dangling in the metadata.
    """
    refs = [
        (o, DataReference(from_uuid=o.uuid, from_property=prop, to_uuid=target))
        for o in objs
        for prop, target in o.references.items()
    ]
    if not refs:
        return []
    try:
        response = collection.data.reference_add_many([r for _, r in refs])
    except WeaviateBaseError as exc:
        return [(o, _message(exc)) for o, _ in refs]
    return [(refs[i][0], e.message) for i, e in response.errors.items()]


def _with_present_targets(
    client: weaviate.WeaviateClient, names: CollectionNames, tenant: str, objs: list[SearchObject]
) -> list[SearchObject]:
    """The objects with only the references whose target exists.

    A tenant's writes are checked: Weaviate rejects a reference from a multi-tenant object to a
    target that is not there (yet), where a single-tenant collection keeps it dangling. Such a
    reference is left out and counted as dangling; a re-run of the day, once the target's day is
    loaded, links it.
    """
    by_collection: dict[str, set[tuple[str | None, uuid.UUID]]] = {}
    for o in objs:
        for ref, target in o.references.items():
            by_collection.setdefault(names.of(REFERENCE_KEYS[ref][0]), set()).add((tenant, target))
    found = {
        (name, key) for name, keys in by_collection.items() for key in present(client, name, keys)
    }
    kept = []
    for o in objs:
        refs = {
            ref: target
            for ref, target in o.references.items()
            if (names.of(REFERENCE_KEYS[ref][0]), (tenant, target)) in found
        }
        if refs:
            kept.append(replace(o, references=refs))
    return kept


_DONE = object()


def _encoded(
    encoder: CachedEncoder, chunks: Iterator[list[Placed]]
) -> Iterator[tuple[list[Placed], np.ndarray, EncodeStats]]:
    """(objects, vectors, stats) per encode batch, read and computed one batch ahead in a
    thread (the thread also pulls the chunks from the fold, which nothing else reads then)."""
    q: queue.Queue[Any] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def work() -> None:
        try:
            for chunk in chunks:
                vectors, stats = encoder.encode([o.text for _t, o in chunk])
                while not stop.is_set():
                    try:
                        q.put((chunk, vectors, stats), timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            q.put(exc)

    worker = threading.Thread(target=work, name="search-encode", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=60)


def _delete_stale(collection: Any, day: str, run_token: str) -> int:
    """Delete D's objects this run did not write (delete_many is capped per call: loop)."""
    where = Filter.by_property(DAY).equal(day) & Filter.by_property(LOAD_TOKEN).not_equal(run_token)
    deleted = 0
    for _ in range(_DELETE_ROUNDS):
        response = collection.data.delete_many(where=where)
        if response.failed:
            raise RuntimeError(f"{response.failed} stale objects of {day} could not be deleted")
        deleted += int(response.successful)
        if response.matches == 0 or response.successful == 0:
            return deleted
    raise RuntimeError(f"stale objects of {day} still left after {_DELETE_ROUNDS} delete rounds")


class _Targets:
    """Distinct reference targets (collection, tenant, uuid) of a type's loaded objects.

    Kept in a private SQLite temporary database (SQLite deletes its file on close) rather than
    a set, which would grow with the day.
    """

    def __init__(self) -> None:
        self._conn = sqlite3.connect("", isolation_level=None)
        self._conn.execute(
            "CREATE TABLE targets (collection TEXT NOT NULL, tenant TEXT NOT NULL,"
            " target TEXT NOT NULL, PRIMARY KEY (collection, tenant, target))"
        )

    def __enter__(self) -> _Targets:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._conn.close()

    def add(self, keys: Iterable[tuple[str, str | None, uuid.UUID]]) -> None:
        # '' for "no tenant": SQLite keys treat NULLs as distinct; tenant names are never empty.
        with self._conn:
            self._conn.executemany(
                "INSERT OR IGNORE INTO targets VALUES (?, ?, ?)",
                ((c, t or "", str(u)) for c, t, u in keys),
            )

    def by_collection(self, size: int) -> Iterator[tuple[str, set[tuple[str | None, uuid.UUID]]]]:
        """(collection, up to `size` distinct (tenant, uuid)) pieces."""
        collections = [r[0] for r in self._conn.execute("SELECT DISTINCT collection FROM targets")]
        for name in sorted(collections):
            cursor = self._conn.execute(
                "SELECT tenant, target FROM targets WHERE collection = ?", (name,)
            )
            while rows := cursor.fetchmany(size):
                yield name, {(t or None, uuid.UUID(u)) for t, u in rows}


def _dangling(client: weaviate.WeaviateClient, targets: _Targets) -> int:
    """References whose target is not (yet) in Weaviate: another day not loaded, or a failure.
    A multi-tenant target counts only in the referrer's tenant."""
    return sum(
        len(keys) - len(present(client, name, keys))
        for name, keys in targets.by_collection(_KEY_CHUNK)
    )


def _skipped_failure(names: CollectionNames, s: Skipped) -> tracking.Failure:
    return tracking.Failure(
        names.of(s.aggregate_type),
        s.aggregate_id,
        "incomplete_aggregate",
        s.reason,
        {"event_ids": [str(e) for e in s.event_ids]},
        s.event_ids,
    )


def _json_safe(props: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v if isinstance(v, str | int | float | bool | None) else str(v) for k, v in props.items()
    }


def run_day(
    *,
    conn: psycopg.Connection[Any],
    client: weaviate.WeaviateClient,
    encoder: CachedEncoder,
    kafka: KafkaClients | None,
    day: str,
    run_id: str,
    options: SinkOptions,
    types: Sequence[str] = TYPES,
    log: Callable[[str], None] = lambda _m: None,
) -> DayResult:
    """Everything for day D: schema, read, load, and the search-service's bookkeeping.

    Two runs of the same day at once would delete each other's objects (each sees the other's
    token as stale), so a session advisory lock per (collections, day) serializes them.
    """
    lock_key = f"weaviate:{options.names.prefix}:{day}"
    conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (lock_key,))
    conn.commit()
    try:
        return _run_day(
            conn=conn,
            client=client,
            encoder=encoder,
            kafka=kafka,
            day=day,
            run_id=run_id,
            options=options,
            types=types,
            log=log,
        )
    finally:
        conn.rollback()
        conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (lock_key,))
        conn.commit()


def _run_day(
    *,
    conn: psycopg.Connection[Any],
    client: weaviate.WeaviateClient,
    encoder: CachedEncoder,
    kafka: KafkaClients | None,
    day: str,
    run_id: str,
    options: SinkOptions,
    types: Sequence[str],
    log: Callable[[str], None],
) -> DayResult:
    started = time.perf_counter()
    schema = ensure_schema(client, options.names, options.schema)
    for drift in schema.drift:
        log(f"schema drift (left unchanged): {drift}")
    tracking.heartbeat(conn, options.version, "healthy", {"day": day, "phase": "reading"})
    conn.commit()
    read = read_day(conn, kafka, day, options.consumer_group)
    with read.fold:  # the spilled events go once the day is recorded
        if read.note:
            log(read.note)
        run_token = f"{run_id}:{uuid.uuid4().hex[:8]}"
        per_type, failures, outcomes = load_day(
            client,
            encoder,
            read,
            run_token=run_token,
            options=options,
            types=types,
            log=log,
            conn=conn,
        )
        result = DayResult(
            day=day,
            source=read.source,
            events=read.fold.events,
            duplicates=read.fold.duplicates,
            per_type=per_type,
            failures=failures,
            schema=schema,
            model=encoder.encoder.model_name,
            dimension=encoder.encoder.dimension,
            seconds=time.perf_counter() - started,
            max_failure_ratio=options.max_failure_ratio,
        )
        failed_keys = {(f.collection, f.source_key) for f in failures}
        tracking.record_failures(conn, day, run_id, failures, {})
        for t in types:
            name = options.names.of(t)
            succeeded = (aid for aid, _e in read.fold.keys(t) if (name, aid) not in failed_keys)
            while piece := list(itertools.islice(succeeded, _KEY_CHUNK)):
                tracking.record_failures(conn, day, run_id, [], {name: piece})
        tracking.record_processing(conn, outcomes)
        tracking.record_sync(conn, options.consumer_group, read.positions)
        tracking.log(
            conn,
            f"weaviate day {day}: {result.objects} objects, {result.failed} failed",
            {
                "day": day,
                "run_id": run_id,
                "source": read.source,
                "events": read.fold.events,
                "failed": result.failed,
                "per_type": {
                    t: {
                        "objects": r.objects,
                        "loaded": r.loaded,
                        "deleted": r.deleted,
                        "references": r.references,
                        "vectors_per_s": round(r.vectors_per_s, 1),
                        "cache_hits": r.encode.cache_hits,
                        "encoded": r.encode.encoded,
                    }
                    for t, r in per_type.items()
                },
            },
            level="warning" if result.failed else "info",
        )
        tracking.heartbeat(
            conn,
            options.version,
            "degraded" if result.exceeded else "healthy",
            {"day": day, "phase": "done", "model": result.model, "failed": result.failed},
        )
        conn.commit()
        return result
