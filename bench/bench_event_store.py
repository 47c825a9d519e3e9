"""Benchmark: monolith -> event store for one day, against a raw COPY of the same bytes.

    .venv/bin/python -m bench.bench_event_store --rows 100000 --rows 1000000

For each size it seeds a throwaway database with one day of sample rows, migrates that day
in a child process (so its peak RSS is the migration's own), then COPYs the very rows the
migration wrote (events + outbox) into identical empty tables: the ratio is migration
events/s over raw COPY events/s, both measured in this run.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import textwrap
import time

import psycopg
from psycopg import sql

from bench.common import DAY, seeded_day

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    from datetime import date
    from strangler.migration.partition_run import PartitionMigration, RunOptions
    t0 = time.perf_counter()
    r = PartitionMigration(sys.argv[1], date.fromisoformat(sys.argv[2]),
                           options=RunOptions(batch_size=int(sys.argv[3])), report=lambda m: None).run()
    print(json.dumps({"seconds": time.perf_counter() - t0, "rows": r.source_rows, "events": r.events_written,
                      "failed": r.failed, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    """
)


def _raw_copy(url: str) -> tuple[float, int, int]:
    """Seconds to COPY the stored events + outbox rows into identical empty tables."""
    with psycopg.connect(url) as conn:
        buffers: dict[str, bytes] = {}
        for table in ("events", "outbox"):
            out = io.BytesIO()
            with conn.cursor().copy(
                sql.SQL("COPY eventstore.{} TO STDOUT").format(sql.Identifier(table))
            ) as copy:
                for chunk in copy:
                    out.write(chunk)
            buffers[table] = out.getvalue()
            conn.execute(
                sql.SQL("CREATE TABLE public.{} (LIKE eventstore.{} INCLUDING ALL)").format(
                    sql.Identifier(f"raw_{table}"), sql.Identifier(table)
                )
            )
        conn.commit()
        t0 = time.perf_counter()
        for table, data in buffers.items():
            with conn.cursor().copy(
                sql.SQL("COPY public.{} FROM STDIN").format(sql.Identifier(f"raw_{table}"))
            ) as copy:
                copy.write(data)
        conn.commit()
        seconds = time.perf_counter() - t0
        count = conn.execute("SELECT count(*) FROM public.raw_events").fetchone()
    return seconds, int(count[0]) if count else 0, sum(len(b) for b in buffers.values())


def bench(rows: int, batch_size: int) -> dict[str, float]:
    with seeded_day(rows) as url:
        child = subprocess.run(
            [sys.executable, "-c", CHILD, url, DAY.isoformat(), str(batch_size)],
            capture_output=True,
            text=True,
            check=True,
        )
        run = json.loads(child.stdout.strip().splitlines()[-1])
        copy_s, copied, copy_bytes = _raw_copy(url)
    events_per_s = run["events"] / run["seconds"]
    copy_per_s = copied / copy_s
    return {
        "source_rows": run["rows"],
        "events": run["events"],
        "failed": run["failed"],
        "migration_s": run["seconds"],
        "events_per_s": events_per_s,
        "rows_per_s": run["rows"] / run["seconds"],
        "raw_copy_s": copy_s,
        "raw_copy_events_per_s": copy_per_s,
        "raw_copy_mb": copy_bytes / 2**20,
        "ratio_vs_raw_copy": events_per_s / copy_per_s,
        "peak_rss_mb": run["peak_rss_mb"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append", help="Source rows (repeatable).")
    parser.add_argument("--batch-size", type=int, default=2_000)
    args = parser.parse_args()
    for rows in args.rows or [100_000, 1_000_000]:
        r = bench(rows, args.batch_size)
        print(
            f"{r['source_rows']:>9,} rows -> {r['events']:>9,} events in {r['migration_s']:7.1f}s: "
            f"{r['events_per_s']:8,.0f} events/s ({r['rows_per_s']:,.0f} rows/s), peak RSS {r['peak_rss_mb']:.0f} MiB | "
            f"raw COPY of the same {r['raw_copy_mb']:.0f} MiB: {r['raw_copy_events_per_s']:9,.0f} events/s | "
            f"ratio {r['ratio_vs_raw_copy']:.3f}"
        )


if __name__ == "__main__":
    main()
