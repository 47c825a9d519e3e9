"""Benchmark: outbox -> Kafka relay against Kafka's own ProducerPerformance, same run.

    .venv/bin/python -m bench.bench_kafka --events 100000 --events 1000000

For each size: seed one sample day, migrate it into the event store (timed: the first half of
monolith -> Kafka), publish it with the relay into fresh topics (timed), then run
`org.apache.kafka.tools.ProducerPerformance` (kafka-tools from the stack's Maven install) with
the same number of records, the mean record size, acks=all, idempotence, lz4 and linger.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import time
import uuid

import psycopg

from bench.common import DAY, seeded_day
from strangler.migration.events import TOPICS
from strangler.migration.outbox_relay import DayRelay, RelayOptions
from strangler.migration.partition_run import PartitionMigration, RunOptions
from strangler.migration.topics import domain_topic_specs, ensure_topics, progress_topic_spec
from strangler.resources.kafka import KafkaResource
from strangler.settings import get_settings
from strangler.stack.kafka import KafkaService

EVENTS_PER_ROW = 1.4


def producer_performance(records: int, record_size: int, bootstrap: str) -> float:
    """records/s reported by Kafka's own producer perf tool on a fresh 6-partition topic."""
    settings = get_settings()
    kafka = KafkaResource(bootstrap_servers=bootstrap)
    topic = f"bench.perf.{uuid.uuid4().hex[:8]}"
    spec = domain_topic_specs(
        "",
        partitions=settings.kafka_partitions,
        replication_factor=1,
        min_insync_replicas=1,
        retention_days=1,
        compaction=False,
        message_max_bytes=settings.kafka_message_max_bytes,
    )[0]
    ensure_topics(kafka.admin(), [type(spec)(topic, spec.partitions, 1, spec.config)])
    libs = KafkaService(settings).libs_dir
    out = subprocess.run(
        [
            "java",
            "-Xmx1g",
            "-cp",
            f"{libs}/*",
            "org.apache.kafka.tools.ProducerPerformance",
            "--topic",
            topic,
            "--num-records",
            str(records),
            "--record-size",
            str(record_size),
            "--throughput",
            "-1",
            "--producer-props",
            f"bootstrap.servers={bootstrap}",
            "acks=all",
            "enable.idempotence=true",
            "compression.type=lz4",
            "linger.ms=20",
            "batch.size=262144",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"(\d+) records sent, ([\d.]+) records/sec", out)
    if match is None:
        raise RuntimeError(f"unexpected ProducerPerformance output: {out[-500:]}")
    return float(match.group(2))


def bench(events: int) -> dict[str, float]:
    settings = get_settings()
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    kafka = KafkaResource(bootstrap_servers=settings.kafka_bootstrap, topic_prefix=prefix)
    with seeded_day(int(events / EVENTS_PER_ROW)) as url:
        t0 = time.perf_counter()
        migrated = PartitionMigration(
            url, DAY, options=RunOptions(topic_prefix=prefix), report=lambda m: None
        ).run()
        migrate_s = time.perf_counter() - t0
        specs = domain_topic_specs(
            prefix,
            partitions=settings.kafka_partitions,
            replication_factor=1,
            min_insync_replicas=1,
            retention_days=1,
            compaction=False,
            message_max_bytes=settings.kafka_message_max_bytes,
        )
        progress = progress_topic_spec(prefix, 1)
        ensure_topics(kafka.admin(), [*specs, progress])
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT count(*), avg(octet_length(payload::text)) FROM eventstore.outbox"
            ).fetchone()
        assert row is not None
        total, mean_size = int(row[0]), int(row[1])
        t0 = time.perf_counter()
        results = DayRelay(
            url,
            kafka,
            DAY.isoformat(),
            [kafka.topic(t) for t in TOPICS.values()],
            progress.name,
            options=RelayOptions(workers=settings.relay_workers),
            report=lambda m: None,
        ).run()
        relay_s = time.perf_counter() - t0
    published = sum(r.published for r in results)
    perf = producer_performance(total, mean_size, settings.kafka_bootstrap)
    return {
        "source_rows": migrated.source_rows,
        "events": published,
        "record_bytes": mean_size,
        "relay_events_per_s": published / relay_s,
        "producer_perf_per_s": perf,
        "ratio": published / relay_s / perf,
        "end_to_end_events_per_s": published / (migrate_s + relay_s),
        "migrate_s": migrate_s,
        "relay_s": relay_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events", type=int, action="append", help="Events to publish (repeatable)."
    )
    args = parser.parse_args()
    for events in args.events or [100_000, 1_000_000]:
        r = bench(events)
        print(
            f"{r['events']:>9,} events of {r['record_bytes']} B: relay {r['relay_events_per_s']:9,.0f} ev/s "
            f"({r['relay_s']:.1f}s) | ProducerPerformance {r['producer_perf_per_s']:9,.0f} rec/s | "
            f"ratio {r['ratio']:.2f} | monolith->Kafka end to end {r['end_to_end_events_per_s']:8,.0f} ev/s "
            f"(migrate {r['migrate_s']:.1f}s + relay {r['relay_s']:.1f}s)"
        )


if __name__ == "__main__":
    main()
