"""Benchmark: Kafka -> ClickHouse for one day, against a raw Arrow insert of the same rows.

    .venv/bin/python -m bench.bench_clickhouse --events 100000 --events 1000000

For each size it publishes a synthetic day of contract envelopes to fresh topics (transactional
producer, like the relay), records the offset ranges in a throwaway Postgres database, and
loads the day with the analytics sink of the sample spec (read by ranges, land the raw records,
extract in ClickHouse, current state, the analytics folder, swap, commit, bookkeeping): once
cold (the database and its tables are created first, `cold s`), then again (the steady state,
whose rate is `sink ev/s`). The baseline, in the same run: the very rows the sink wrote, read
back as Arrow and inserted with clickhouse-connect `insert_arrow` into an identical empty
table. It also times a bare `REPLACE PARTITION` of the day (the swap without the rebuilds).
"""

from __future__ import annotations

import argparse
import resource
import time
import uuid
from datetime import date
from typing import Any

import psycopg

from strangler.analytics.ddl import DdlOptions, drop_database_sql
from strangler.analytics.sink import SinkOptions, load_day
from strangler.analytics.swap import partition_id
from strangler.db.scratch import scratch_database
from strangler.resources.clickhouse import ClickHouseResource
from strangler.resources.kafka import KafkaResource
from strangler.sample.synthetic import create_topics, day_events, publish_day, record_ranges
from strangler.settings import get_settings
from strangler.spec import current_spec

TOPICS = current_spec().topics
"""The settings' spec's stream types and their topics."""

DAY = date(2026, 2, 2)
EVENTS_PER_DOCUMENT = 5.9  # day_events: ~1 customer per 5 documents, 1-2 pages, 2 job events


def _bench(events: int, track_events: bool) -> dict[str, Any]:
    settings = get_settings()
    tag = uuid.uuid4().hex[:8]
    kafka = KafkaResource(bootstrap_servers=settings.kafka_bootstrap, topic_prefix=f"bench{tag}.")
    clickhouse = ClickHouseResource(dsn=settings.clickhouse_url)
    ddl = DdlOptions(database=f"bench_{tag}")
    topics = [kafka.topic(t) for t in TOPICS.values()]
    with scratch_database(settings.postgres_url, prefix="bench") as url:
        return _bench_in(url, kafka, clickhouse, ddl, topics, tag, events, track_events)


def _bench_in(
    url: str,
    kafka: KafkaResource,
    clickhouse: ClickHouseResource,
    ddl: DdlOptions,
    topics: list[str],
    tag: str,
    events: int,
    track_events: bool,
) -> dict[str, Any]:
    try:
        create_topics(kafka.admin(), topics, 3)
        t0 = time.perf_counter()
        ranges = publish_day(
            kafka,
            day_events(DAY, int(events / EVENTS_PER_DOCUMENT), tag=tag),
            DAY,
            transactional_id=f"bench-{tag}",
        )
        publish_s = time.perf_counter() - t0
        with psycopg.connect(url, autocommit=True) as conn:
            record_ranges(conn, DAY.isoformat(), ranges)

        def load() -> Any:
            return load_day(
                DAY,
                clickhouse=clickhouse.client,
                postgres_conninfo=url,
                consumer_factory=kafka.consumer,
                topic_prefix=kafka.topic_prefix,
                options=SinkOptions(
                    ddl=ddl, consumer_group=f"bench-{tag}", track_events=track_events
                ),
            )

        cold = load()  # creates the database and its tables first
        result = load()  # the steady state: the schema is there, the day is replaced
        rows = result.rows
        assert cold.rows == rows

        with clickhouse.client() as c:
            live = ddl.table("events")
            raw = ddl.table("raw_events")
            twin = ddl.table("swap_events")
            arrow = c.query_arrow(f"SELECT * FROM {live}")
            c.command(f"CREATE TABLE {raw} AS {live}")
            c.command(f"CREATE TABLE {twin} AS {live}")
            t0 = time.perf_counter()
            for batch in arrow.to_batches(max_chunksize=100_000):
                c.insert_arrow(raw, batch_to_table(batch))
            raw_s = time.perf_counter() - t0
            c.command(f"INSERT INTO {twin} SELECT * FROM {raw}")
            t0 = time.perf_counter()
            c.command(f"ALTER TABLE {raw} REPLACE PARTITION ID '{partition_id(DAY)}' FROM {twin}")
            replace_s = time.perf_counter() - t0
        return {
            "events": rows,
            "publish_s": publish_s,
            "cold_sink_s": cold.duration_s,
            "sink_s": result.duration_s,
            "read_stage_s": result.read_s,
            "swap_s": result.swap_s,
            "sink_rows_per_s": rows / result.duration_s,
            "raw_insert_s": raw_s,
            "raw_rows_per_s": rows / raw_s,
            "bare_replace_partition_s": replace_s,
            "bytes_on_disk": result.storage["events"].bytes_on_disk,
            "compression_ratio": result.storage["events"].compression_ratio,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    finally:
        with clickhouse.client() as c:
            c.command(drop_database_sql(ddl))
        kafka.admin().delete_topics(topics)


def batch_to_table(batch: Any) -> Any:
    import pyarrow as pa

    return pa.Table.from_batches([batch])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, action="append", help="events per day (repeatable)")
    parser.add_argument(
        "--track-events",
        action="store_true",
        help="also write the per-event service_processing rows (an opt-in audit trail)",
    )
    args = parser.parse_args()
    sizes = args.events or [100_000, 1_000_000]
    print(
        f"{'events':>9} {'cold s':>7} {'sink ev/s':>10} {'raw ev/s':>10} {'ratio':>6} {'sink s':>7}"
        f" {'swap s':>7} {'replace s':>9} {'MB disk':>8} {'compr':>6} {'rss MB':>7}"
    )
    for n in sizes:
        r = _bench(n, track_events=args.track_events)
        print(
            f"{r['events']:>9} {r['cold_sink_s']:>7.2f} {r['sink_rows_per_s']:>10.0f} {r['raw_rows_per_s']:>10.0f}"
            f" {r['sink_rows_per_s'] / r['raw_rows_per_s']:>6.3f} {r['sink_s']:>7.2f}"
            f" {r['swap_s']:>7.3f} {r['bare_replace_partition_s']:>9.4f}"
            f" {r['bytes_on_disk'] / 1e6:>8.1f} {r['compression_ratio']:>6.2f} {r['peak_rss_mb']:>7.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
