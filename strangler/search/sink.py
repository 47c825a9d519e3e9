"""Day D -> Weaviate: read D's events, embed (cached), upsert, delete what the source dropped.

The collections are the estate spec's searchable aggregates (`strangler.search.schema`), loaded
parents first. Convergence without a staging copy: objects have deterministic UUIDs (uuid5 of
aggregate and row id), a batch insert replaces an object whole (properties, vector and its
references), and every object written by a run carries that run's `load_token`. After the
upload, objects of D with another token are exactly those the source no longer has (deleted
rows, or rows Weaviate rejected this time, which are recorded in failed_entities), and are
deleted. Re-running D therefore leaves the same objects.

A multi-tenant collection (strangler.search.tenants) gets every write in the object's tenant:
upserts and references per tenant, stale objects deleted in every tenant (a dropped object's
tenant may have nothing else on D). A tenant named through a parent is the parent row's tenant:
its state comes from D's own events, else from the event store (a child can be created days
after its parent); a row whose tenant cannot be resolved is a failure (`tenant_unresolved`),
never dropped silently.

Encoding runs in a worker thread, a bounded queue ahead of the uploads (PyTorch and ONNX
Runtime release the GIL), so model time and network time overlap and at most a few encode
batches of vectors are in memory at once.

Memory stays flat as a day grows: the day's events are spilled to disk by `DayFold`, and each
aggregate is loaded one encode batch of objects at a time (references, rejections and the
dangling targets per batch; the dangling targets themselves spill to a temporary SQLite
database). What is kept per object is small: the parent tenants a multi-tenant load looked up,
the failures, and the per-event outcomes handed back for the bookkeeping.
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
from strangler.migration.kafka_clients import KafkaClients
from strangler.migration.kafka_records import OffsetsGone, load_offset_ranges, read_ranges
from strangler.search import tracking
from strangler.search.embedding_cache import CachedEncoder, EncodeStats
from strangler.search.objects import DayFold, SearchObject, parent_ids
from strangler.search.schema import (
    CONTENT_HASH,
    DAY,
    LOAD_TOKEN,
    CollectionDecl,
    CollectionNames,
    SchemaOptions,
    SchemaReport,
    declare_from_store,
    ensure_schema,
)
from strangler.search.tenants import (
    Placement,
    ensure_tenants,
    is_multi_tenant,
    present,
    scoped,
    scopes,
    tenant_name,
)
from strangler.spec.models import EstateSpec

CONSUMER_GROUP = "search-service"
_DELETE_ROUNDS = 1_000
_KEY_CHUNK = 5_000
"""Ids per event-store lookup, Weaviate existence check and failed_entities resolve."""

Outcome = tuple[uuid.UUID, str, float, str | None]
"""(event id, status, duration ms, error) of one event, for the service's bookkeeping."""


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
    aggregate: str
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


def declarations(
    conn: psycopg.Connection[Any], spec: EstateSpec, options: SinkOptions
) -> list[CollectionDecl]:
    """The spec's collections, typed by the event store's baseline of the source columns."""
    return declare_from_store(conn, spec, options.names, multi_tenancy=options.schema.multi_tenancy)


@dataclass(frozen=True)
class Prepared:
    """The spec's collections, typed and present in Weaviate: what every day of a run shares."""

    decls: list[CollectionDecl]
    schema: SchemaReport


def prepare(
    conn: psycopg.Connection[Any],
    client: weaviate.WeaviateClient,
    spec: EstateSpec,
    options: SinkOptions,
    log: Callable[[str], None] = lambda _m: None,
) -> Prepared:
    """Declare the collections and ensure them once per run, not once per day of a range."""
    decls = declarations(conn, spec, options)
    schema = ensure_schema(client, decls, options.schema)
    for drift in schema.drift:
        log(f"schema drift (left unchanged): {drift}")
    return Prepared(decls, schema)


def read_day(
    conn: psycopg.Connection[Any],
    kafka: KafkaClients | None,
    day: str,
    decls: Sequence[CollectionDecl],
    topics: Sequence[str],
    consumer_group: str = CONSUMER_GROUP,
) -> DayRead:
    """D's events of the declared collections: Kafka's recorded ranges of `topics` (without
    the prefix), else the event store.

    The caller owns the returned fold and closes it (its events are spilled to disk)."""
    fold = DayFold(day, decls)
    try:
        return _read_day(conn, kafka, day, topics, consumer_group, fold)
    except BaseException:
        fold.close()
        raise


def _read_day(
    conn: psycopg.Connection[Any],
    kafka: KafkaClients | None,
    day: str,
    topics: Sequence[str],
    consumer_group: str,
    fold: DayFold,
) -> DayRead:
    note = ""
    if kafka is not None:
        ranges = load_offset_ranges(conn, day, [kafka.topic(t) for t in sorted(set(topics))])
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
                decls = list(fold.decls.values())
                with fold:
                    fold = DayFold(day, decls)
                note = f"fell back to the event store: {gone}"
            finally:
                consumer.close()
        else:
            note = "no Kafka offset ranges recorded for the day"
    try:
        for batch in read_day_from_store(conn, day, fold.stream_types):
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
    aggregates: Sequence[str] | None = None,
    log: Callable[[str], None] = lambda _m: None,
    conn: psycopg.Connection[Any] | None = None,
) -> tuple[dict[str, TypeResult], list[tracking.Failure], list[Outcome]]:
    """Upsert D's objects, delete D's stale ones; returns results, failures, event outcomes.

    `conn` (the event store) resolves the tenant of rows whose parent is not of D; only
    multi-tenant collections with a parent tenant need it.
    """
    fold = read.fold
    failures: list[tracking.Failure] = []
    outcomes: list[Outcome] = []
    results: dict[str, TypeResult] = {}
    resolver = TenantResolver(conn, fold)
    for decl in fold.decls.values():
        if aggregates is not None and decl.aggregate not in aggregates:
            continue
        multi = is_multi_tenant(client.collections.get(decl.name))
        result, type_failures, type_outcomes = _load_type(
            client,
            encoder.with_chunking(decl.chunk_overlap, decl.max_tokens),
            decl,
            fold,
            run_token,
            options,
            resolver if multi else None,
        )
        results[decl.aggregate] = result
        failures.extend(type_failures)
        outcomes.extend(type_outcomes)
        log(
            f"{result.collection}: {result.loaded}/{result.objects} upserted, {result.failed} failed,"
            f" {result.deleted} stale deleted, {result.vectors_per_s:.0f} vectors/s"
            f" ({result.encode.cache_hits} cached, {result.encode.encoded} encoded)"
        )
    return results, failures, outcomes


class TenantResolver:
    """The tenant of a row: its tenant field, or its parent row's tenant (recursively).

    A parent's state comes from D's fold, else from the event store (its import and later
    events, deleted or not: a deleted parent still names its children's tenant). Answers are
    kept per (aggregate, row id) for the load: a day's children share few parents.
    """

    def __init__(self, conn: psycopg.Connection[Any] | None, fold: DayFold) -> None:
        self.conn = conn
        self.fold = fold
        self._known: dict[tuple[str, str], tuple[str | None, str]] = {}

    def place(self, decl: CollectionDecl, objs: Iterable[SearchObject]) -> Placement:
        out = Placement()
        objs = list(objs)
        parents: dict[str, tuple[str | None, str]] = {}
        if decl.tenant_parent is not None:
            wanted = {
                o.parents[decl.tenant_parent] for o in objs if decl.tenant_parent in o.parents
            }
            parents = self.tenants(decl.tenant_parent, wanted)
        for o in objs:
            tenant, reason = self._own(decl, o.row_id, o.tenant_key, o.parents, parents)
            if tenant is not None:
                out.tenants[o.row_id] = tenant
            else:
                out.unresolved[o.row_id] = f"{reason}: no tenant to put it in"
        return out

    def _own(
        self,
        decl: CollectionDecl,
        row_id: str,
        tenant_key: Any,
        parents: Mapping[str, str],
        parent_tenants: Mapping[str, tuple[str | None, str]],
    ) -> tuple[str | None, str]:
        if decl.tenant_field is not None:
            if tenant_key is None:
                return None, f"{decl.aggregate} {row_id} has no {decl.tenant_field}"
            try:
                return tenant_name(tenant_key), ""
            except ValueError as exc:
                return None, f"{decl.aggregate} {row_id}: {exc}"
        parent = decl.tenant_parent
        assert parent is not None
        if parent not in parents:
            fields = ", ".join(decl.parent_fields[parent])
            return None, f"{decl.aggregate} {row_id} has no {parent} ({fields} not set)"
        tenant, reason = parent_tenants[parents[parent]]
        if tenant is None:
            return None, f"{decl.aggregate} {row_id}: {reason}"
        return tenant, ""

    def tenants(self, aggregate: str, row_ids: Iterable[str]) -> dict[str, tuple[str | None, str]]:
        """Row id -> (tenant, "") or (None, why not) of `aggregate`'s rows."""
        wanted = set(row_ids)
        missing = sorted(r for r in wanted if (aggregate, r) not in self._known)
        if missing:
            decl = self.fold.decls[aggregate]
            states = self.fold.states(aggregate, missing)
            states.update(self._stored_states(decl, [r for r in missing if r not in states]))
            grand: dict[str, tuple[str | None, str]] = {}
            if decl.tenant_parent is not None:
                grand = self.tenants(
                    decl.tenant_parent,
                    {
                        ids[decl.tenant_parent]
                        for s in states.values()
                        if decl.tenant_parent in (ids := parent_ids(decl, s))
                    },
                )
            for row_id in missing:
                state = states.get(row_id)
                if state is None:
                    answer: tuple[str | None, str] = (
                        None,
                        f"{aggregate} {row_id} is unknown: no event of it on {self.fold.day}"
                        " nor in the event store",
                    )
                else:
                    answer = self._own(
                        decl,
                        row_id,
                        state.get(decl.tenant_field) if decl.tenant_field else None,
                        parent_ids(decl, state),
                        grand,
                    )
                self._known[(aggregate, row_id)] = answer
        return {r: self._known[(aggregate, r)] for r in wanted}

    def _stored_states(self, decl: CollectionDecl, row_ids: list[str]) -> dict[str, dict[str, Any]]:
        if not row_ids or self.conn is None:
            return {}
        out: dict[str, dict[str, Any]] = {}
        folded = decl.stream_type != decl.aggregate
        for start in range(0, len(row_ids), _KEY_CHUNK):
            part = row_ids[start : start + _KEY_CHUNK]
            # The stream id is the row id unless folded: the indexed column narrows the search.
            rows = self.conn.execute(
                "SELECT coalesce(metadata ->> 'source_id', aggregate_id), payload"
                " FROM eventstore.events WHERE aggregate_type = %s AND event_type = ANY(%s)"
                " AND coalesce(metadata ->> 'source_id', aggregate_id) = ANY(%s)"
                + ("" if folded else " AND aggregate_id = ANY(%s)")
                + " ORDER BY aggregate_id, aggregate_version, position",
                (decl.stream_type, sorted(decl.upsert_events), part, *([] if folded else [part])),
            ).fetchall()
            for row_id, payload in rows:
                out.setdefault(str(row_id), {}).update(payload)
        self.conn.commit()
        return out


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


def _failure(
    decl: CollectionDecl, o: SearchObject, rule: str, reason: str, **extra: Any
) -> tracking.Failure:
    return tracking.Failure(
        decl.name, o.row_id, rule, reason, {**_json_safe(o.properties), **extra}, o.event_ids
    )


def _load_type(
    client: weaviate.WeaviateClient,
    encoder: CachedEncoder,
    decl: CollectionDecl,
    fold: DayFold,
    run_token: str,
    options: SinkOptions,
    resolver: TenantResolver | None = None,
) -> tuple[TypeResult, list[tracking.Failure], list[Outcome]]:
    """One aggregate, one encode batch of objects at a time (`resolver` given: multi-tenant)."""
    name = decl.name
    day = fold.day
    collection = client.collections.get(name)
    result = TypeResult(decl.aggregate, name, objects=fold.count(decl.aggregate))
    failures: list[tracking.Failure] = []
    failed_ids: set[str] = set()
    if resolver is not None:
        # A first pass places every object; the upload pass then reads them grouped by tenant
        # (stable), so uploads fill whole per-tenant batches.
        fold.clear_tenants(decl.aggregate)
        tenants: set[str] = set()
        for chunk in fold.chunks(decl.aggregate, options.encode_batch):
            placement = resolver.place(decl, (o for _t, o in chunk))
            for _t, o in chunk:
                if o.row_id in placement.unresolved:
                    failed_ids.add(o.row_id)
                    failures.append(
                        _failure(decl, o, "tenant_unresolved", placement.unresolved[o.row_id])
                    )
            fold.assign_tenants(decl.aggregate, placement.tenants.items())
            tenants.update(placement.tenants.values())
        result.tenants = len(tenants)
        ensure_tenants(collection, tenants)
    references = 0
    with _Targets() as targets:
        started = time.perf_counter()
        chunks = fold.chunks(decl.aggregate, options.encode_batch, by_tenant=resolver is not None)
        for chunk, vectors, stats in _encoded(encoder, chunks):
            result.encode.add(stats)
            for tenant, start, part in _parts(chunk, options.upload_batch):
                handle = scoped(collection, tenant)
                data = [
                    DataObject(
                        properties={
                            **o.properties,
                            LOAD_TOKEN: run_token,
                            CONTENT_HASH: hashlib.sha256(o.text.encode()).hexdigest()[:32],
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
                    failed_ids.add(o.row_id)
                    failures.append(_failure(decl, o, "weaviate_rejected", message))
                linked = [o for i, o in enumerate(part) if i not in rejected and o.references]
                if tenant is not None:
                    linked = _with_present_targets(client, decl, tenant, linked)
                for o, message in _link(handle, linked):
                    failed_ids.add(o.row_id)
                    failures.append(
                        _failure(
                            decl,
                            o,
                            "reference_rejected",
                            message,
                            references={k: str(v) for k, v in o.references.items()},
                        )
                    )
            # An object fails only in its own chunk, so the chunk's survivors are final.
            loaded = [(t, o) for t, o in chunk if o.row_id not in failed_ids]
            references += sum(len(o.references) for _t, o in loaded)
            collections = {r.name: r.target_collection for r in decl.references}
            targets.add(
                (collections[ref], t, target)
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
    outcomes: list[Outcome] = [
        (e, "failed" if row_id in errors else "succeeded", share_ms, errors.get(row_id))
        for row_id, event_ids in fold.keys(decl.aggregate)
        for e in event_ids
    ]
    # A deleted row's events are done once its object is gone.
    outcomes += [
        (e, "succeeded", 0.0, None)
        for _row_id, event_ids in fold.keys(decl.aggregate, deleted=True)
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
    day D before its parent's day). Batch references are accepted and resolve once the
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
    client: weaviate.WeaviateClient, decl: CollectionDecl, tenant: str, objs: list[SearchObject]
) -> list[SearchObject]:
    """The objects with only the references whose target exists.

    A tenant's writes are checked: Weaviate rejects a reference from a multi-tenant object to a
    target that is not there (yet), where a single-tenant collection keeps it dangling. Such a
    reference is left out and counted as dangling; a re-run of the day, once the target's day is
    loaded, links it.
    """
    collections = {r.name: r.target_collection for r in decl.references}
    by_collection: dict[str, set[tuple[str | None, uuid.UUID]]] = {}
    for o in objs:
        for ref, target in o.references.items():
            by_collection.setdefault(collections[ref], set()).add((tenant, target))
    found = {
        (name, key) for name, keys in by_collection.items() for key in present(client, name, keys)
    }
    kept = []
    for o in objs:
        refs = {
            ref: target
            for ref, target in o.references.items()
            if (collections[ref], (tenant, target)) in found
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
    spec: EstateSpec,
    day: str,
    run_id: str,
    options: SinkOptions,
    aggregates: Sequence[str] | None = None,
    log: Callable[[str], None] = lambda _m: None,
    prepared: Prepared | None = None,
) -> DayResult:
    """Everything for day D: schema, read, load, and the search-service's bookkeeping.

    `aggregates`: the searchable aggregates to load (default: all of them). `prepared`: the
    collections a range run declared and ensured once (default: done here). Two runs of the
    same day at once would delete each other's objects (each sees the other's token as
    stale), so a session advisory lock per (collections, day) serializes them.
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
            spec=spec,
            day=day,
            run_id=run_id,
            options=options,
            aggregates=aggregates,
            log=log,
            prepared=prepared or prepare(conn, client, spec, options, log),
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
    spec: EstateSpec,
    day: str,
    run_id: str,
    options: SinkOptions,
    aggregates: Sequence[str] | None,
    log: Callable[[str], None],
    prepared: Prepared,
) -> DayResult:
    started = time.perf_counter()
    decls, schema = prepared.decls, prepared.schema
    tracking.heartbeat(conn, options.version, "healthy", {"day": day, "phase": "reading"})
    conn.commit()
    topics = [spec.topic_of(d.aggregate) for d in decls]
    read = read_day(conn, kafka, day, decls, topics, options.consumer_group)
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
            aggregates=aggregates,
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
        for decl in decls:
            if decl.aggregate not in per_type:
                continue
            # Loaded or deleted on purpose: an earlier failure of the row is resolved.
            done = itertools.chain(
                (
                    r
                    for r, _e in read.fold.keys(decl.aggregate)
                    if (decl.name, r) not in failed_keys
                ),
                (r for r, _e in read.fold.keys(decl.aggregate, deleted=True)),
            )
            while piece := list(itertools.islice(done, _KEY_CHUNK)):
                tracking.record_failures(conn, day, run_id, [], {decl.name: piece})
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


def run_range(
    *,
    conn: psycopg.Connection[Any],
    client: weaviate.WeaviateClient,
    encoder: CachedEncoder,
    kafka: KafkaClients | None,
    spec: EstateSpec,
    days: Sequence[str],
    run_id: str,
    options: SinkOptions,
    aggregates: Sequence[str] | None = None,
    log: Callable[[str], None] = lambda _m: None,
    on_day: Callable[[DayResult], None] = lambda _r: None,
) -> list[DayResult]:
    """`run_day` for each day of a range, oldest first, sharing one client, one encoder and
    the collections declared and ensured once. Each day is recorded as a single run records
    it (so the range equals day-by-day runs); it stops after a day whose failures exceed the
    threshold, the days before it staying loaded."""
    prepared = prepare(conn, client, spec, options, log)
    results: list[DayResult] = []
    for day in days:
        result = run_day(
            conn=conn,
            client=client,
            encoder=encoder,
            kafka=kafka,
            spec=spec,
            day=day,
            run_id=run_id,
            options=options,
            aggregates=aggregates,
            log=log,
            prepared=prepared,
        )
        results.append(result)
        on_day(result)
        if result.exceeded:
            break
    return results
