"""Publish the outbox rows of a range of partitions: one producer per topic for the range.

Years of sparse history are thousands of partitions with a handful of rows each; a producer,
a fencing `init_transactions` and a scan of the progress topic per partition and topic cost
far more than the rows. Here a range run pays those once:

- the range's partitions are locked in Postgres (an advisory lock per partition key, taken by
  single-partition relays too), so no other relay publishes them meanwhile;
- one transactional producer per topic (transactional.id = topic + the range's first and last
  key, so a restarted run of the same range fences the dead one; a dead run of another range
  holds its open transaction until the transaction timeout, and the read_committed progress
  read below waits for it to end);
- the progress of every (topic, partition) is read in one scan of the progress topic;
- a topic's rows of all partitions are read with one query, in partition then position order,
  and sent in transactions of up to `transaction_size` records, each carrying the new progress
  of every partition it touches (records and progress commit together, as in `DayRelay`);
- after each transaction, the touched partitions' watermarks (`outbox_published`) and offset
  ranges (`kafka_offset_ranges`) are recorded in one Postgres transaction.

Each partition keeps its own result (events, bytes, offsets, transactions), so per-partition
metadata is what a partition-by-partition relay reports.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from confluent_kafka import KafkaError, KafkaException, Producer
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from strangler.migration import run_log
from strangler.migration.kafka_clients import KafkaClients
from strangler.migration.kafka_records import SOURCE
from strangler.migration.outbox_relay import (
    MIGRATION,
    FatalRelayError,
    RawText,
    RelayOptions,
    RetriableRelayError,
    TopicResult,
    mark_published,
    record_oversized,
)
from strangler.migration.relay_progress import (
    TopicProgress,
    progress_key,
    read_progress,
)

log = logging.getLogger(__name__)

LOCK_CLASS = 0x5354_524C  # "STRL": the advisory-lock namespace of relays
"""First key of the relays' advisory locks (the second is the partition key's hashtext)."""

_ROWS = """
SELECT w.k, o.position, o.message_key, o.headers::text,
       (o.payload || jsonb_build_object('partition_day', o.partition_key))::text
FROM unnest(%s::text[], %s::bigint[]) WITH ORDINALITY AS w(k, after, n)
CROSS JOIN LATERAL (
    SELECT * FROM eventstore.outbox o
    WHERE o.partition_key = w.k AND o.topic = %s AND o.position > w.after
    ORDER BY o.position
) o
ORDER BY w.n, o.position
"""
_DRY = """
SELECT w.k, count(o.position),
       coalesce(sum(octet_length(o.payload::text) + octet_length(o.message_key)), 0)
FROM unnest(%s::text[], %s::bigint[]) AS w(k, after)
LEFT JOIN eventstore.outbox o ON o.partition_key = w.k AND o.topic = %s AND o.position > w.after
GROUP BY w.k
"""

_COUNT = """
SELECT count(*) FROM unnest(%s::text[], %s::bigint[]) AS w(k, after)
JOIN eventstore.outbox o ON o.partition_key = w.k AND o.topic = %s AND o.position > w.after
"""

_Row = tuple[str, int, bytes, bytes, bytes]
"""(partition key, position, message key, headers as a JSON object of strings, value)."""


def lock_partitions(conn: psycopg.Connection[Any], partition_keys: Sequence[str]) -> None:
    """Hold the relay lock of each partition for the session (waits for a relay holding one;
    keys in sorted order, so two overlapping ranges cannot deadlock)."""
    conn.execute(
        "SELECT count(pg_advisory_lock(%s, hashtext(k)))"
        " FROM (SELECT k FROM unnest(%s::text[]) AS k ORDER BY k) keys",
        (LOCK_CLASS, sorted(set(partition_keys))),
    )


def range_transactional_id(topic: str, first: str, last: str) -> str:
    return f"strangler-relay.{topic}.{first}..{last}"


@dataclass
class _Chunk:
    rows: list[_Row]

    def keys(self) -> list[str]:
        return list(dict.fromkeys(r[0] for r in self.rows))


class RangeRelay:
    """Publishes the outbox rows of many partitions for a set of topics (one worker per topic)."""

    def __init__(
        self,
        conninfo: str,
        kafka: KafkaClients,
        partition_keys: Sequence[str],
        topics: Sequence[str],
        progress_topic: str,
        *,
        run_id: str | None = None,
        options: RelayOptions | None = None,
        report: Callable[[str], None] | None = None,
        fenced_range: tuple[str, str] | None = None,
    ) -> None:
        """`fenced_range`: the run's first and last key, naming its producers (default: the
        keys relayed); a resumed run passes the same range, so its producers fence the dead
        run's even when fewer partitions are left to send."""
        if not partition_keys:
            raise ValueError("a range relay needs at least one partition key")
        self.conninfo = conninfo
        self.kafka = kafka
        self.keys = sorted(partition_keys)
        self.topics = list(topics)
        self.progress_topic = progress_topic
        self.run_id = run_id or f"cli-{uuid.uuid4()}"
        self.options = options or RelayOptions()
        self.report = report or log.info
        self.fenced_range = fenced_range or (self.keys[0], self.keys[-1])

    def run(self) -> dict[str, list[TopicResult]]:
        """Per partition key: one result per topic, in the order of `topics`."""
        with psycopg.connect(self.conninfo, autocommit=True) as lock:
            lock_partitions(lock, self.keys)
            producers: dict[str, Producer] = {}
            if not self.options.dry_run:
                producers = {topic: self._producer(topic) for topic in self.topics}
                with ThreadPoolExecutor(max_workers=len(producers) or 1) as pool:
                    list(pool.map(lambda p: p.init_transactions(60), producers.values()))
            progress = self._read_progress(self.topics, self.keys)
            with ThreadPoolExecutor(
                max_workers=max(1, self.options.workers), thread_name_prefix="range-relay"
            ) as pool:
                futures = [
                    pool.submit(self._topic, topic, producers.get(topic), progress)
                    for topic in self.topics
                ]
                by_topic = [f.result() for f in futures]
        return {key: [results[key] for results in by_topic] for key in self.keys}

    # -- per topic ---------------------------------------------------------------------------

    def _topic(
        self,
        topic: str,
        producer: Producer | None,
        progress: dict[tuple[str, str], TopicProgress],
    ) -> dict[str, TopicResult]:
        results = {
            key: TopicResult(topic, progress=progress.get((topic, key), TopicProgress()))
            for key in self.keys
        }
        after = [results[key].progress.last_position for key in self.keys]
        started = time.monotonic()
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            if producer is None:
                for key, count, size in conn.execute(_DRY, (self.keys, after, topic)):
                    results[str(key)].would_send = int(count)
                    results[str(key)].would_send_bytes = int(size)
                return results
            run_key = f"{self.run_id}:{topic}"
            run_log.start_run(
                conn,
                run_key,
                f"{MIGRATION}:{topic}",
                f"{self.keys[0]}..{self.keys[-1]}",
                dry_run=False,
                code_version=self.options.code_version,
                total=self._count(conn, topic, after),
            )
            published = failed = 0
            try:
                with psycopg.connect(self.conninfo) as reader:
                    reader.adapters.register_loader("text", RawText)
                    with reader.cursor(name="range_relay") as cur:
                        cur.itersize = self.options.batch_size
                        cur.execute(_ROWS, (self.keys, after, topic))
                        chunk: list[_Row] = []
                        named = {k.encode(): k for k in self.keys}
                        while rows := cur.fetchmany(self.options.batch_size):
                            # the raw-text loader hands the key over as bytes too
                            chunk += [(named[r[0]], *r[1:]) for r in rows]
                            if len(chunk) >= self.options.transaction_size:
                                self._commit_chunk(conn, producer, topic, _Chunk(chunk), results)
                                chunk = []
                        if chunk:
                            self._commit_chunk(conn, producer, topic, _Chunk(chunk), results)
                self._record_committed_elsewhere(conn, topic, results)
                published = sum(r.published for r in results.values())
                failed = sum(r.failed for r in results.values())
            except BaseException as exc:
                run_log.finish_run(
                    conn,
                    run_key,
                    status="failed",
                    processed=sum(r.published for r in results.values()),
                    failed=sum(r.failed for r in results.values()),
                    rate=0.0,
                    error=repr(exc),
                )
                raise
            elapsed = max(time.monotonic() - started, 1e-9)
            for result in results.values():
                result.duration_s = elapsed
            run_log.finish_run(
                conn,
                run_key,
                status="succeeded",
                processed=published,
                failed=failed,
                rate=published / elapsed,
            )
        self.report(
            f"{topic} {self.keys[0]}..{self.keys[-1]}: {published} events of"
            f" {sum(1 for r in results.values() if r.published or r.failed)} partitions,"
            f" {failed} failed, {published / elapsed:.0f} events/s"
        )
        return results

    def _count(self, conn: psycopg.Connection[Any], topic: str, after: list[int]) -> int:
        """The rows to send (index only: no payload rendered), for the run's progress."""
        row = conn.execute(_COUNT, (self.keys, after, topic)).fetchone()
        return int(row[0]) if row else 0

    def _commit_chunk(
        self,
        conn: psycopg.Connection[Any],
        producer: Producer,
        topic: str,
        chunk: _Chunk,
        results: dict[str, TopicResult],
    ) -> None:
        """One Kafka transaction for the chunk (retried from the committed progress), then
        the touched partitions' watermarks and offset ranges in Postgres."""
        keys = chunk.keys()
        retries_before = sum(results[k].retries for k in keys)

        @retry(
            retry=retry_if_exception_type(RetriableRelayError),
            wait=wait_exponential_jitter(multiplier=1, max=30),
            stop=stop_after_attempt(self.options.attempts),
            reraise=True,
            before_sleep=lambda state: self.report(
                f"{topic} {keys[0]}..{keys[-1]}: retrying transaction after"
                f" {state.outcome.exception() if state.outcome else '?'}"
            ),
        )
        def attempt() -> None:
            if sum(results[k].retries for k in keys) > retries_before:
                committed = self._read_progress([topic], keys)
                for key in keys:
                    results[key].progress = committed.get((topic, key), TopicProgress())
            rows = [r for r in chunk.rows if r[1] > results[r[0]].progress.last_position]
            self._publish(conn, producer, topic, rows, results)

        try:
            attempt()
        except RetriableRelayError as exc:
            raise FatalRelayError(
                f"{topic} {keys[0]}..{keys[-1]}: gave up after {self.options.attempts}"
                f" attempts: {exc}"
            ) from exc
        self._record_published(conn, topic, keys, results)

    def _publish(
        self,
        conn: psycopg.Connection[Any],
        producer: Producer,
        topic: str,
        rows: list[_Row],
        results: dict[str, TopicResult],
    ) -> None:
        if not rows:
            return
        delivered: dict[str, list[tuple[int, int]]] = {}
        errors: list[KafkaError] = []
        callbacks: dict[str, Callable[[KafkaError | None, Any], None]] = {}

        def on_delivery_of(key: str) -> Callable[[KafkaError | None, Any], None]:
            """The delivery callback of `key`'s records (one per partition key, not per row)."""
            offsets = delivered.setdefault(key, [])

            def on_delivery(err: KafkaError | None, msg: Any) -> None:
                if err is not None:
                    errors.append(err)
                else:
                    offsets.append((msg.partition(), msg.offset()))

            return callbacks.setdefault(key, on_delivery)

        oversized: list[tuple[_Row, str]] = []
        sent: dict[str, int] = {}
        last: dict[str, int] = {}
        limit = self.options.message_max_bytes
        produce = producer.produce
        try:
            producer.begin_transaction()
            for row in rows:
                key, position, message_key, header_json, value = row
                last[key] = position
                if len(value) + len(message_key) > limit:
                    oversized.append((row, f"{len(value)} bytes > message.max.bytes {limit}"))
                    continue
                headers = [
                    *orjson.loads(header_json).items(),
                    ("partition_day", key),
                    ("source", SOURCE),
                ]
                while True:
                    try:
                        produce(
                            topic,
                            value,
                            message_key,
                            headers=headers,
                            on_delivery=callbacks.get(key) or on_delivery_of(key),
                        )
                        sent[key] = sent.get(key, 0) + len(value)
                        break
                    except BufferError:
                        producer.poll(0.1)
                    except KafkaException as exc:
                        if exc.args[0].code() != KafkaError.MSG_SIZE_TOO_LARGE:
                            raise
                        oversized.append((row, str(exc.args[0])))
                        break
            if producer.flush(self.options.flush_timeout_s) > 0 or errors:
                raise KafkaException(errors[0] if errors else KafkaError(KafkaError._TIMED_OUT))
            advanced = {
                key: results[key].progress.advanced(
                    position, delivered.get(key, []), len(delivered.get(key, []))
                )
                for key, position in last.items()
            }
            for key, progress in advanced.items():
                producer.produce(
                    self.progress_topic,
                    key=progress_key(topic, key).encode(),
                    value=progress.to_json(),
                )
            self._record_failures(conn, topic, oversized)
            producer.commit_transaction(self.options.flush_timeout_s)
        except KafkaException as exc:
            _abort(producer, exc)
            for key in last:
                results[key].retries += 1
            raise RetriableRelayError(str(exc)) from exc
        failed: dict[str, int] = {}
        for row, _why in oversized:
            failed[row[0]] = failed.get(row[0], 0) + 1
        for key, progress in advanced.items():
            result = results[key]
            result.progress = progress
            result.published += len(delivered.get(key, []))
            result.bytes += sent.get(key, 0)
            result.failed += failed.get(key, 0)
            result.transactions += 1

    # -- Kafka helpers -------------------------------------------------------------------------

    def _producer(self, topic: str) -> Producer:
        return self.kafka.producer(
            **{
                "transactional.id": range_transactional_id(topic, *self.fenced_range),
                "enable.idempotence": True,
                "acks": "all",
                "partitioner": "murmur2_random",
                "linger.ms": 20,
                "batch.num.messages": 10_000,
                "compression.type": "lz4",
                "message.max.bytes": max(self.options.message_max_bytes + 65_536, 1_000_000),
                "transaction.timeout.ms": int(self.options.flush_timeout_s * 1000) + 10_000,
                "message.timeout.ms": int(self.options.flush_timeout_s * 1000),
                "queue.buffering.max.messages": 200_000,
            }
        )

    def _read_progress(
        self, topics: Sequence[str], keys: Sequence[str]
    ) -> dict[tuple[str, str], TopicProgress]:
        """The committed progress of every (topic, key), in one scan of the progress topic."""
        wanted = {progress_key(t, k): (t, k) for t in topics for k in keys}
        found = read_progress(self.kafka, self.progress_topic, set(wanted))
        return {wanted[name]: progress for name, progress in found.items()}

    # -- Postgres bookkeeping --------------------------------------------------------------------

    def _record_failures(
        self, conn: psycopg.Connection[Any], topic: str, oversized: list[tuple[_Row, str]]
    ) -> None:
        record_oversized(
            conn,
            topic,
            self.run_id,
            [(row[0], row[1], row[2], row[3], why) for row, why in oversized],
        )

    def _record_committed_elsewhere(
        self, conn: psycopg.Connection[Any], topic: str, results: dict[str, TopicResult]
    ) -> None:
        """Partitions this run had nothing to send for, whose progress Kafka holds: a run
        killed between its Kafka commit and its Postgres bookkeeping left their watermarks and
        offset ranges behind, and no later chunk touches them again."""
        recorded = dict(
            conn.execute(
                "SELECT partition_key, last_position FROM migration_state.outbox_published"
                " WHERE topic = %s AND partition_key = ANY(%s)",
                (topic, self.keys),
            ).fetchall()
        )
        untouched = [
            key
            for key, result in results.items()
            if not result.transactions and result.progress.last_position > recorded.get(key, 0)
        ]
        if untouched:
            self._record_published(conn, topic, untouched, results)

    def _record_published(
        self,
        conn: psycopg.Connection[Any],
        topic: str,
        keys: Sequence[str],
        results: dict[str, TopicResult],
    ) -> None:
        """The touched partitions' watermarks and offset ranges, replaced in one transaction."""
        with conn.transaction():
            mark_published(
                conn,
                topic,
                {
                    key: results[key].progress.last_position
                    for key in keys
                    if results[key].progress.last_position > 0
                },
                self.run_id,
            )
            conn.execute(
                "DELETE FROM migration_state.kafka_offset_ranges"
                " WHERE topic = %s AND partition_key = ANY(%s)",
                (topic, list(keys)),
            )
            conn.cursor().executemany(
                "INSERT INTO migration_state.kafka_offset_ranges (topic, partition_key,"
                " kafka_partition, start_offset, end_offset, asset_key, run_id)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [
                    (topic, key, p, first, last + 1, f"kafka/{topic}", self.run_id)
                    for key in keys
                    for p, (first, last) in sorted(results[key].progress.ranges.items())
                ],
            )


def _abort(producer: Producer, cause: KafkaException) -> None:
    """Abort the open transaction (a fatal error ends the run instead)."""
    error = cause.args[0] if cause.args and isinstance(cause.args[0], KafkaError) else None
    if error is not None and error.fatal():
        raise FatalRelayError(f"Kafka producer failed fatally: {error.str()}") from cause
    try:
        producer.abort_transaction(60)
    except KafkaException as abort_exc:
        abort_error = abort_exc.args[0]
        if abort_error.fatal():
            raise FatalRelayError(
                f"Kafka producer failed fatally: {abort_error.str()}"
            ) from abort_exc
        log.warning(
            "abort_transaction failed (%s); retrying with progress read back from Kafka",
            abort_error,
        )
