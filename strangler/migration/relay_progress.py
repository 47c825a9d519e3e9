"""The relay's progress, committed inside the same Kafka transaction as the records.

A crash can never separate "records published" from "progress recorded": both commit or
neither does. Recovery reads the progress back from Kafka (read_committed), after the new
producer's `init_transactions` aborted whatever the dead one left open.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import TopicPartition

from strangler.migration.kafka_clients import KafkaClients
from strangler.migration.kafka_records import watermarks


def progress_key(topic: str, partition_key: str) -> str:
    return f"{topic}|{partition_key}"


def split_progress_key(key: str) -> tuple[str, str]:
    """(topic, partition key) of a `progress_key`."""
    topic, _, partition_key = key.rpartition("|")
    return topic, partition_key


@dataclass
class TopicProgress:
    """How far one topic of one day is published: outbox position, count, offsets per partition."""

    last_position: int = 0
    published: int = 0
    ranges: dict[int, tuple[int, int]] = field(default_factory=dict)
    """Kafka partition -> (first offset, last offset) of this day's records."""

    def advanced(
        self, last_position: int, offsets: Iterable[tuple[int, int]], count: int
    ) -> TopicProgress:
        ranges = dict(self.ranges)
        for partition, offset in offsets:
            first, last = ranges.get(partition, (offset, offset))
            ranges[partition] = (min(first, offset), max(last, offset))
        return TopicProgress(max(self.last_position, last_position), self.published + count, ranges)

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "last_position": self.last_position,
                "published": self.published,
                "ranges": {str(p): list(r) for p, r in sorted(self.ranges.items())},
            }
        ).encode()

    @classmethod
    def from_json(cls, value: bytes) -> TopicProgress:
        doc = json.loads(value)
        return cls(
            int(doc["last_position"]),
            int(doc["published"]),
            {int(p): (int(r[0]), int(r[1])) for p, r in doc["ranges"].items()},
        )


def read_progress(
    kafka: KafkaClients, progress_topic: str, keys: set[str], timeout_s: float = 180.0
) -> dict[str, TopicProgress]:
    """The latest committed progress for `keys` (missing key = nothing published yet).

    Reads the compacted topic as a read_committed reader up to its high watermark, the end
    of everything written so far: a read_committed watermark is the last stable offset, which
    stops before a transaction whose commit markers are still on their way (the progress of a
    relay that has just committed) or that is still open. Reading to the high watermark waits
    for those to be decided, bounded by the writers' transaction timeout.
    """
    group = reader_group()
    probe = kafka.consumer(group, **{"isolation.level": "read_uncommitted"})
    try:
        low, high = watermarks(probe, progress_topic, 0)
    finally:
        probe.close()
    found: dict[str, TopicProgress] = {}
    if high <= low:
        return found
    tp = TopicPartition(progress_topic, 0)
    consumer = kafka.consumer(group)
    consumer.assign([TopicPartition(progress_topic, 0, low)])
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            # consume() waits its whole timeout unless num_messages arrive: short waits, and
            # the position check below ends the read as soon as the end is reached.
            for msg in consumer.consume(num_messages=1_000, timeout=0.05):
                if msg.error() is not None:
                    raise RuntimeError(
                        f"reading relay progress from {progress_topic}: {msg.error()}"
                    )
                raw_key = msg.key()
                key = raw_key.decode() if isinstance(raw_key, bytes) else ""
                if key in keys:
                    value = msg.value()
                    if value is None:
                        found.pop(key, None)
                    else:
                        found[key] = TopicProgress.from_json(value)
            position = consumer.position([tp])[0].offset
            if position >= high:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"relay progress in {progress_topic} stayed behind offset {high} for {timeout_s:.0f}s "
                    "(an open transaction of another relay?)"
                )
    finally:
        consumer.close()


def reader_group() -> str:
    """A throwaway group id: progress reads never commit offsets."""
    return f"strangler-relay-progress-{uuid.uuid4().hex[:8]}"
