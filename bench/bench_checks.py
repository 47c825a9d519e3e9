"""Benchmark: a clean event store <-> ClickHouse comparison of one large day, as a multiple of a
plain `count(*)` of that day on each side (same run, same data, best of N).

    .venv/bin/python -m bench.bench_checks --events 1000000

Builds a scratch Postgres database holding N events of one day (random uuids, as uniformly
spread as our uuid5 ids) and a scratch ClickHouse database (the analytics schema, views
included) holding the same event ids for that day. Then times:
  * baseline: `SELECT count(*)` of the day in eventstore.events + `SELECT count()` of the day
    in analytics.events;
  * the bisecting diff (bucket sums on both sides; nothing differs, so one level);
  * the whole ClickHouse check (diff + view-target comparisons + known aggregates + freshness).
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

import psycopg

from strangler.analytics.ddl import DdlOptions, apply_schema, drop_database_sql
from strangler.checks.clickhouse import ClickHouseSide, check_clickhouse_day
from strangler.checks.diff import bisect_diff
from strangler.checks.event_store import EventStoreSide
from strangler.db.scratch import scratch_database
from strangler.resources.clickhouse import ClickHouseResource
from strangler.settings import get_settings

DAY = date(2026, 2, 2)
_FILL = """
INSERT INTO eventstore.events (event_id, aggregate_type, aggregate_id, aggregate_version,
                               event_type, payload, metadata, occurred_at)
SELECT gen_random_uuid(), 'Document', g::text, 1, 'DocumentUploaded', '{}'::jsonb,
       jsonb_build_object('partition_day', %(day)s::text),
       %(day)s::date + make_interval(secs => (g %% 86400))
FROM generate_series(1, %(n)s) g
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
    clickhouse = ClickHouseResource(dsn=settings.clickhouse_url)
    ddl = DdlOptions(database=f"bench_checks_{uuid.uuid4().hex[:8]}")
    key = DAY.isoformat()
    with scratch_database(settings.postgres_url, prefix="bench_checks") as url:
        with psycopg.connect(url) as conn:
            conn.execute(_FILL, {"day": key, "n": events})
            conn.commit()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE eventstore.events")
            rows = conn.execute(
                "SELECT event_id, aggregate_id, occurred_at FROM eventstore.events"
            ).fetchall()
        try:
            with clickhouse.client() as c:
                apply_schema(c, ddl)
                for start in range(0, len(rows), 200_000):
                    part = rows[start : start + 200_000]
                    c.insert(
                        f"{ddl.db}.`events`",
                        [(DAY, r[2], r[0], "DocumentUploaded", "Document", r[1], 1) for r in part],
                        column_names=[
                            "partition_day",
                            "occurred_at",
                            "event_id",
                            "event_type",
                            "aggregate_type",
                            "aggregate_id",
                            "aggregate_version",
                        ],
                    )
            del rows
            with psycopg.connect(url) as conn:

                def pg_count() -> None:
                    conn.execute(
                        "SELECT count(*) FROM eventstore.events WHERE partition_day = %s", (key,)
                    ).fetchone()
                    conn.rollback()

                def ch_count() -> None:
                    with clickhouse.client() as c:
                        c.query(
                            f"SELECT count() FROM {ddl.table('events')}"
                            " WHERE partition_day = {d:Date}",
                            parameters={"d": key},
                        )

                store = EventStoreSide(conn, key)
                ch = ClickHouseSide(clickhouse.client, ddl, key)

                def pg_buckets() -> None:
                    store.summarize(2, None)
                    conn.rollback()

                def ch_buckets() -> None:
                    ch.summarize(2, None)

                def diff() -> None:
                    result = bisect_diff(store, ch)
                    conn.rollback()
                    assert result.equal and result.left_count == events, result

                def whole_check() -> None:
                    out = check_clickhouse_day(conn, clickhouse.client, key, ddl=ddl)
                    assert out.matches.passed, out.matches.summary()

                t = {
                    "pg_count_s": best(pg_count, repeat),
                    "ch_count_s": best(ch_count, repeat),
                    "pg_buckets_s": best(pg_buckets, repeat),
                    "ch_buckets_s": best(ch_buckets, repeat),
                    "diff_s": best(diff, repeat),
                    "whole_check_s": best(whole_check, repeat),
                }
        finally:
            with clickhouse.client() as c:
                c.command(drop_database_sql(ddl))
    baseline = t["pg_count_s"] + t["ch_count_s"]
    t["diff_x_count"] = t["diff_s"] / baseline
    t["whole_check_x_count"] = t["whole_check_s"] / baseline
    t["pg_x_count"] = t["pg_buckets_s"] / t["pg_count_s"]
    t["ch_x_count"] = t["ch_buckets_s"] / t["ch_count_s"]
    return t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, action="append", help="events in the day")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for n in args.events or [1_000_000]:
        t = run(n, args.repeat)
        print(
            f"{n:>10,} events: count(*) pg {t['pg_count_s']:.3f}s + ch {t['ch_count_s']:.3f}s; "
            f"clean diff {t['diff_s']:.3f}s = {t['diff_x_count']:.1f}x count "
            f"(pg {t['pg_x_count']:.1f}x, ch {t['ch_x_count']:.1f}x); "
            f"whole ClickHouse check {t['whole_check_s']:.3f}s = {t['whole_check_x_count']:.1f}x"
        )


if __name__ == "__main__":
    main()
