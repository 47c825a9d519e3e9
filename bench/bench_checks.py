"""Benchmark: every ClickHouse check of a clean partition, as a multiple of a plain
`count(*)` of that partition on each side (same run, same data, best of N).

    .venv/bin/python -m bench.bench_checks --events 100000

Builds a scratch Postgres database holding N import events of one day of the sample spec
(`Document` rows, with outbox rows, as the migration writes them) and loads the day into a
scratch ClickHouse database through the sink (the event-store path: events table, current
state per aggregate, the sample's analytics folder). Then times:
  * baseline: `SELECT count(*)` of the day in eventstore.events + `SELECT count()` of the day
    in the events table (a client opened for it, as every check opens one);
  * the bisecting diff alone (bucket sums on both sides; nothing differs, so one level);
  * the whole ClickHouse check (ids, known aggregates, freshness, views vs rebuild, current
    state vs the event store's live rows).
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

import psycopg

from strangler.analytics.ddl import DdlOptions, drop_database_sql
from strangler.analytics.sink import SinkOptions, load_partition
from strangler.checks.clickhouse import ClickHouseSide, check_clickhouse_partition
from strangler.checks.diff import bisect_diff
from strangler.checks.event_store import EventStoreSide
from strangler.db.scratch import scratch_database
from strangler.resources.clickhouse import ClickHouseResource
from strangler.resources.kafka import KafkaResource
from strangler.settings import get_settings
from strangler.spec import current_spec

DAY = date(2026, 2, 2)
_FILL = """
INSERT INTO eventstore.events (event_id, aggregate_type, aggregate_id, aggregate_version,
                               event_type, payload, metadata, occurred_at)
SELECT gen_random_uuid(), 'Document', g::text, 1, 'DocumentUploaded',
       jsonb_build_object('document_id', g, 'customer_id', g %% 1000, 'title', 'doc ' || g,
                          'category', 'invoice', 'page_count', 1 + g %% 7),
       jsonb_build_object('partition_day', %(day)s::text, 'source_table', 'documents',
                          'source_id', g::text),
       %(day)s::date + make_interval(secs => (g %% 86400))
FROM generate_series(1, %(n)s) g
"""
_OUTBOX = """
INSERT INTO eventstore.outbox (event_id, position, topic, message_key, payload, occurred_at)
SELECT e.event_id, e.position, 'documents.events', e.aggregate_id,
       jsonb_build_object('event_id', e.event_id, 'event_type', e.event_type,
                          'schema_version', 1, 'aggregate_type', e.aggregate_type,
                          'aggregate_id', e.aggregate_id, 'aggregate_version', 1,
                          'occurred_at', e.occurred_at, 'position', e.position,
                          'payload', e.payload, 'metadata', e.metadata),
       e.occurred_at
FROM eventstore.events e
"""


def best(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def run(events: int, repeat: int) -> dict[str, float]:
    settings = get_settings()
    spec = current_spec()
    clickhouse = ClickHouseResource(dsn=settings.clickhouse_url)
    kafka = KafkaResource(bootstrap_servers=settings.kafka_bootstrap)
    ddl = DdlOptions(database=f"bench_checks_{uuid.uuid4().hex[:8]}")
    key = DAY.isoformat()
    with scratch_database(settings.postgres_url, prefix="bench_checks") as url:
        with psycopg.connect(url) as conn:
            conn.execute(_FILL, {"day": key, "n": events})
            conn.execute(_OUTBOX)
            conn.commit()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE eventstore.events")
        try:
            loaded = load_partition(
                key,
                clickhouse=clickhouse.client,
                postgres_conninfo=url,
                consumer_factory=kafka.consumer,
                spec=spec,
                options=SinkOptions(ddl=ddl),
            )
            assert loaded.rows == events, loaded.rows
            with psycopg.connect(url) as conn:

                def pg_count() -> None:
                    conn.execute(
                        "SELECT count(*) FROM eventstore.events WHERE partition_key = %s", (key,)
                    ).fetchone()
                    conn.rollback()

                def ch_count() -> None:
                    with clickhouse.client() as c:
                        c.query(
                            f"SELECT count() FROM {ddl.table('events')}"
                            " WHERE partition_key = {k:String}",
                            parameters={"k": key},
                        )

                def diff() -> None:
                    with clickhouse.client() as c:
                        result = bisect_diff(EventStoreSide(conn, key), ClickHouseSide(c, ddl, key))
                    conn.rollback()
                    assert result.equal and result.left_count == events, result

                def whole_check() -> None:
                    with clickhouse.client() as c:
                        out = check_clickhouse_partition(spec, conn, c, key, ddl=ddl)
                    failed = [o.summary() for o in out if not o.passed]
                    assert not failed, failed

                t = {
                    "pg_count_s": best(pg_count, repeat),
                    "ch_count_s": best(ch_count, repeat),
                    "diff_s": best(diff, repeat),
                    "whole_check_s": best(whole_check, repeat),
                }
        finally:
            with clickhouse.client() as c:
                c.command(drop_database_sql(ddl))
    baseline = t["pg_count_s"] + t["ch_count_s"]
    t["diff_x_count"] = t["diff_s"] / baseline
    t["whole_check_x_count"] = t["whole_check_s"] / baseline
    return t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, action="append", help="events in the day")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for n in args.events or [100_000]:
        t = run(n, args.repeat)
        print(
            f"{n:>10,} events: count(*) pg {t['pg_count_s']:.3f}s + ch {t['ch_count_s']:.3f}s; "
            f"clean diff {t['diff_s']:.3f}s = {t['diff_x_count']:.1f}x count; "
            f"whole ClickHouse check {t['whole_check_s']:.3f}s = {t['whole_check_x_count']:.1f}x"
        )


if __name__ == "__main__":
    main()
