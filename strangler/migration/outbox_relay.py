"""Publish one day of the outbox to Kafka, exactly once for `read_committed` readers.

Per topic and day: an idempotent, transactional producer (transactional.id = topic + day, so
a restarted run fences the dead one), key = aggregate id, headers = event id, type, schema
version, occurred_at, partition day, source. Each transaction carries up to N records plus the
new progress (see `relay_progress`); the day's offset ranges are then recorded in
`kafka_offset_ranges`, replacing those of an earlier run, and the last position sent in
`outbox_published` (a watermark per topic and partition key: rows at or below it are published).

The outbox is read as the bytes Postgres sends (keys, headers and values go to Kafka as they
are, never decoded to str and encoded again), by a reader thread that fetches the next batch
while the worker produces the current one.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Generator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
from confluent_kafka import KafkaError, KafkaException, Producer
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg.types.json import Jsonb
from tenacity import (
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from strangler.migration import run_log
from strangler.migration.kafka_clients import KafkaClients
from strangler.migration.kafka_records import SOURCE
from strangler.migration.relay_progress import (
    TopicProgress,
    progress_key,
    read_progress,
)

MIGRATION = "kafka"
log = logging.getLogger(__name__)

_ROWS = """
SELECT o.position, o.message_key, o.headers::text,
       (o.payload || jsonb_build_object('partition_day', o.partition_key))::text AS value
FROM eventstore.outbox o
WHERE o.partition_key = %s AND o.topic = %s AND o.position > %s
ORDER BY o.position
"""
_DRY = """
SELECT count(*), coalesce(sum(octet_length(o.payload::text) + octet_length(o.message_key)), 0)
FROM eventstore.outbox o
WHERE o.partition_key = %s AND o.topic = %s AND o.position > %s
"""
_COUNT = """
SELECT count(*) FROM eventstore.outbox o
WHERE o.partition_key = %s AND o.topic = %s AND o.position > %s
"""
"""The run's total for its progress: a count from the index, no payload rendered (the
profile of a 55k-event relay put 5% of its time in _DRY's octet_length(payload::text))."""


class RetriableRelayError(RuntimeError):
    """The transaction was aborted and can be redone from the last committed progress."""


class FatalRelayError(RuntimeError):
    """The producer cannot go on (fenced, unauthorized, ...); the broker's message says why."""


@dataclass(frozen=True)
class RelayOptions:
    dry_run: bool = False
    workers: int = 4
    batch_size: int = 5_000
    transaction_size: int = 20_000
    message_max_bytes: int = 1_000_000
    flush_timeout_s: float = 120.0
    attempts: int = 6
    code_version: str = "1"


@dataclass
class TopicResult:
    topic: str
    published: int = 0
    bytes: int = 0
    failed: int = 0
    would_send: int = 0
    would_send_bytes: int = 0
    duration_s: float = 0.0
    transactions: int = 0
    retries: int = 0
    progress: TopicProgress = field(default_factory=TopicProgress)

    @property
    def rate(self) -> float:
        return self.published / self.duration_s if self.duration_s else 0.0

    def offset_ranges(self) -> dict[str, list[int]]:
        return {
            str(p): [first, last + 1] for p, (first, last) in sorted(self.progress.ranges.items())
        }


_Row = tuple[int, bytes, bytes, bytes]
"""(position, message key, headers as a JSON object of strings, value): as fetched, no copy."""


class RawText(Loader):
    """Text columns as the bytes Postgres sent: the records carry them unchanged."""

    def load(self, data: Buffer) -> bytes:
        return bytes(data)


def record_oversized(
    conn: psycopg.Connection[Any],
    topic: str,
    run_id: str,
    oversized: Sequence[tuple[str, int, bytes, bytes, str]],
) -> None:
    """Outbox rows Kafka would refuse as too large, as failed entities (partition key, position,
    message key, headers, why); a re-run counts another occurrence instead of a new row."""
    if not oversized:
        return
    conn.cursor().executemany(
        "INSERT INTO migration_state.failed_entities"
        " (migration, partition_key, source_table, source_key, rule, reason, payload, run_id)"
        " VALUES (%s, %s, 'eventstore.outbox', %s, 'message_too_large', %s, %s, %s)"
        " ON CONFLICT (migration, source_table, source_key, rule) DO UPDATE SET"
        " reason = EXCLUDED.reason, occurrences = failed_entities.occurrences + 1,"
        " last_seen_at = now(), run_id = EXCLUDED.run_id",
        [
            (
                MIGRATION,
                partition_key,
                str(position),
                f"{topic}: {why}",
                Jsonb(
                    {"position": position, "key": key.decode(), "headers": orjson.loads(headers)}
                ),
                run_id,
            )
            for partition_key, position, key, headers, why in oversized
        ],
    )


def mark_published(
    conn: psycopg.Connection[Any],
    topic: str,
    last_positions: Mapping[str, int],
    run_id: str | None = None,
) -> None:
    """Record that the outbox rows of `topic` up to each partition key's last position are
    published (the relay's committed progress: Kafka holds them, exactly once)."""
    conn.cursor().executemany(
        "INSERT INTO migration_state.outbox_published (topic, partition_key, last_position, run_id)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (topic, partition_key) DO UPDATE"
        " SET last_position = EXCLUDED.last_position, published_at = now(), run_id = EXCLUDED.run_id",
        [(topic, key, position, run_id) for key, position in last_positions.items()],
    )


def transactional_id(topic: str, partition_key: str) -> str:
    return f"strangler-relay.{topic}.{partition_key}"


class DayRelay:
    """Publishes the outbox rows of one day for a set of topics (one worker per topic)."""

    def __init__(
        self,
        conninfo: str,
        kafka: KafkaClients,
        partition_key: str,
        topics: Sequence[str],
        progress_topic: str,
        *,
        run_id: str | None = None,
        options: RelayOptions | None = None,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.conninfo = conninfo
        self.kafka = kafka
        self.key = partition_key
        self.topics = list(topics)
        self.progress_topic = progress_topic
        self.run_id = run_id or f"cli-{uuid.uuid4()}"
        self.options = options or RelayOptions()
        self.report = report or log.info

    def run(self) -> list[TopicResult]:
        producers: dict[str, Producer] = {}
        if not self.options.dry_run:
            producers = {topic: self._producer(topic) for topic in self.topics}
            with ThreadPoolExecutor(max_workers=len(producers) or 1) as pool:
                list(pool.map(lambda p: p.init_transactions(60), producers.values()))
        progress = self._read_progress()
        with ThreadPoolExecutor(
            max_workers=max(1, self.options.workers), thread_name_prefix="relay"
        ) as pool:
            futures = [
                pool.submit(
                    self._topic, topic, producers.get(topic), progress.get(topic, TopicProgress())
                )
                for topic in self.topics
            ]
            return [f.result() for f in futures]

    # -- per topic ---------------------------------------------------------------------------

    def _topic(self, topic: str, producer: Producer | None, progress: TopicProgress) -> TopicResult:
        result = TopicResult(topic, progress=progress)
        started = time.monotonic()
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            if producer is None:
                row = conn.execute(_DRY, (self.key, topic, progress.last_position)).fetchone()
                result.would_send, result.would_send_bytes = (
                    (int(row[0]), int(row[1])) if row else (0, 0)
                )
                self.report(f"[dry run] {topic} {self.key}: would send {result.would_send} events")
                return result
            run_key = f"{self.run_id}:{topic}"
            total = self._start_run(conn, run_key, topic, progress)
            try:
                chunk: list[_Row] = []
                with closing(self._read(topic, progress.last_position)) as batches:
                    for rows in batches:
                        chunk += rows
                        if len(chunk) >= self.options.transaction_size:
                            self._commit_chunk(conn, producer, topic, chunk, result)
                            self._progress_run(conn, run_key, result, total, started)
                            chunk = []
                if chunk:
                    self._commit_chunk(conn, producer, topic, chunk, result)
            except BaseException as exc:
                self._finish_run(conn, run_key, result, "failed", repr(exc))
                raise
            result.duration_s = time.monotonic() - started
            self._record_published(conn, topic, result)
            self._finish_run(conn, run_key, result, "succeeded", None)
        self.report(
            f"{topic} {self.key}: {result.published} events in {result.transactions} transactions, "
            f"{result.failed} failed, {result.rate:.0f} events/s"
        )
        return result

    def _read(self, topic: str, after: int) -> Generator[list[_Row], None, None]:
        """The topic's outbox rows after `after`, in batches fetched by a thread of their own.

        Postgres renders the next batch while the caller produces this one; at most two
        batches wait in between, so memory stays bounded by the batch size.
        """
        batches: queue.Queue[list[_Row] | BaseException | None] = queue.Queue(maxsize=2)
        stop = threading.Event()

        def fetch() -> None:
            try:
                with psycopg.connect(self.conninfo) as reader:
                    reader.adapters.register_loader("text", RawText)
                    with reader.cursor(name="relay") as cur:
                        cur.itersize = self.options.batch_size
                        cur.execute(_ROWS, (self.key, topic, after))
                        while not stop.is_set() and (
                            rows := cur.fetchmany(self.options.batch_size)
                        ):
                            batches.put(rows)
                batches.put(None)
            except BaseException as exc:  # handed to the consumer of the batches, raised there
                batches.put(exc)

        reader = threading.Thread(target=fetch, name=f"relay-read-{topic}", daemon=True)
        reader.start()
        try:
            while (item := batches.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while reader.is_alive():
                try:
                    batches.get(timeout=0.1)
                except queue.Empty:
                    continue
            reader.join()

    def _commit_chunk(
        self,
        conn: psycopg.Connection[Any],
        producer: Producer,
        topic: str,
        chunk: list[_Row],
        result: TopicResult,
    ) -> None:
        retries_before = result.retries

        @retry(
            retry=retry_if_exception_type(RetriableRelayError),
            wait=wait_exponential_jitter(multiplier=1, max=30),
            stop=stop_after_attempt(self.options.attempts),
            reraise=True,
            before_sleep=lambda state: self.report(
                f"{topic} {self.key}: retrying transaction after {state.outcome.exception() if state.outcome else '?'}"
            ),
        )
        def attempt() -> None:
            if result.retries > retries_before:
                committed = self._read_progress([topic]).get(topic, TopicProgress())
                if committed.last_position >= chunk[-1][0]:
                    result.progress = committed
                    return
            self._publish(
                conn,
                producer,
                topic,
                [r for r in chunk if r[0] > result.progress.last_position],
                result,
            )

        try:
            attempt()
        except RetriableRelayError as exc:
            raise FatalRelayError(
                f"{topic} {self.key}: gave up after {self.options.attempts} attempts: {exc}"
            ) from exc

    def _publish(
        self,
        conn: psycopg.Connection[Any],
        producer: Producer,
        topic: str,
        rows: list[_Row],
        result: TopicResult,
    ) -> None:
        if not rows:
            return
        delivered: list[tuple[int, int]] = []
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, msg: Any) -> None:
            if err is not None:
                errors.append(err)
            else:
                delivered.append((msg.partition(), msg.offset()))

        oversized: list[tuple[_Row, str]] = []
        sent_bytes = 0
        common = [("partition_day", self.key), ("source", SOURCE)]
        limit = self.options.message_max_bytes
        produce = producer.produce
        try:
            producer.begin_transaction()
            for row in rows:
                _position, key, header_json, value = row
                if len(value) + len(key) > limit:
                    oversized.append((row, f"{len(value)} bytes > message.max.bytes {limit}"))
                    continue
                # The stored headers are a JSON object of strings; the client encodes str as
                # UTF-8, the bytes `str(v).encode()` gave.
                headers = [*orjson.loads(header_json).items(), *common]
                while True:
                    try:
                        produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                        sent_bytes += len(value)
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
            progress = result.progress.advanced(rows[-1][0], delivered, len(delivered))
            producer.produce(
                self.progress_topic,
                key=progress_key(topic, self.key).encode(),
                value=progress.to_json(),
            )
            self._record_failures(conn, topic, oversized)
            producer.commit_transaction(self.options.flush_timeout_s)
        except KafkaException as exc:
            self._abort(producer, exc)
            result.retries += 1
            raise RetriableRelayError(str(exc)) from exc
        result.progress = progress
        result.published += len(delivered)
        result.bytes += sent_bytes
        result.failed += len(oversized)
        result.transactions += 1

    @staticmethod
    def _abort(producer: Producer, cause: KafkaException) -> None:
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

    # -- Kafka helpers -------------------------------------------------------------------------

    def _producer(self, topic: str) -> Producer:
        return self.kafka.producer(
            **{
                "transactional.id": transactional_id(topic, self.key),
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

    def _read_progress(self, topics: Sequence[str] | None = None) -> dict[str, TopicProgress]:
        wanted = list(topics) if topics is not None else self.topics
        found = read_progress(
            self.kafka, self.progress_topic, {progress_key(t, self.key) for t in wanted}
        )
        return {
            t: found[progress_key(t, self.key)]
            for t in wanted
            if progress_key(t, self.key) in found
        }

    # -- Postgres bookkeeping --------------------------------------------------------------------

    def _record_failures(
        self, conn: psycopg.Connection[Any], topic: str, oversized: list[tuple[_Row, str]]
    ) -> None:
        record_oversized(
            conn,
            topic,
            self.run_id,
            [(self.key, row[0], row[1], row[2], why) for row, why in oversized],
        )

    def _record_published(
        self, conn: psycopg.Connection[Any], topic: str, result: TopicResult
    ) -> None:
        """Replace the day's ranges for this topic with what Kafka committed, and move the
        topic's watermark to the last position sent (one row, not one update per event)."""
        with conn.transaction():
            if result.progress.last_position > 0:
                mark_published(conn, topic, {self.key: result.progress.last_position}, self.run_id)
            conn.execute(
                "DELETE FROM migration_state.kafka_offset_ranges WHERE topic = %s AND partition_key = %s",
                (topic, self.key),
            )
            conn.cursor().executemany(
                "INSERT INTO migration_state.kafka_offset_ranges"
                " (topic, partition_key, kafka_partition, start_offset, end_offset, asset_key, run_id)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [
                    (topic, self.key, p, first, last + 1, f"kafka/{topic}", self.run_id)
                    for p, (first, last) in sorted(result.progress.ranges.items())
                ],
            )

    def _start_run(
        self, conn: psycopg.Connection[Any], run_key: str, topic: str, progress: TopicProgress
    ) -> int:
        row = conn.execute(_COUNT, (self.key, topic, progress.last_position)).fetchone()
        total = int(row[0]) if row else 0
        run_log.start_run(
            conn,
            run_key,
            f"{MIGRATION}:{topic}",
            self.key,
            dry_run=False,
            code_version=self.options.code_version,
            total=total,
        )
        return total

    def _progress_run(
        self,
        conn: psycopg.Connection[Any],
        run_key: str,
        result: TopicResult,
        total: int,
        started: float,
    ) -> None:
        elapsed = max(time.monotonic() - started, 1e-9)
        rate = result.published / elapsed
        remaining = max(total - result.published - result.failed, 0)
        eta = datetime.now(UTC) + timedelta(seconds=remaining / rate) if rate else None
        run_log.update_run(
            conn, run_key, processed=result.published, failed=result.failed, rate=rate, eta=eta
        )
        self.report(f"{result.topic} {self.key}: {result.published}/{total} events, {rate:.0f}/s")

    def _finish_run(
        self,
        conn: psycopg.Connection[Any],
        run_key: str,
        result: TopicResult,
        status: str,
        error: str | None,
    ) -> None:
        run_log.finish_run(
            conn,
            run_key,
            status=status,
            processed=result.published,
            failed=result.failed,
            rate=result.rate,
            error=error,
        )
