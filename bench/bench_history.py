"""Benchmark: years of sparse history through `strangler migrate --from --to`, against one day.

    .venv/bin/python -m bench.bench_history --rows 100000 --days 1826
    .venv/bin/python -m bench.bench_history --rows 100000 --days 1826 --partitions monthly

A scratch monolith holds ROWS sample rows spread over DAYS days from 2021-01-01 (sparse days);
the CLI migrates it stage by stage (default: events, kafka, clickhouse; Weaviate off) through a
Dagster instance kept in Postgres, as the stack's is (Dagster's default SQLite event log costs
tens of milliseconds per event, and a range run records several events per partition). The
baseline is the same number of rows in ONE day, through the same commands. Printed: seconds per
stage for both, and ratio = one-day time / history time (the target is >= 0.5).
`--partitions` migrates the history with a weekly or monthly copy of the sample's spec.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlparse

import psycopg

from bench.common import ROWS_PER_SCALE, drop_stray_bench_data
from strangler.db.scratch import scratch_database
from strangler.resources.clickhouse import ClickHouseResource
from strangler.resources.kafka import KafkaResource
from strangler.sample.seed import seed
from strangler.settings import SAMPLE_SPEC, get_settings
from strangler.stack.dagster_home import write_dagster_home

START = date(2021, 1, 1)


@dataclass(frozen=True)
class HistoryRun:
    seconds: dict[str, float]
    """Wall seconds per stage (`strangler migrate STAGE --from --to`)."""
    events: int
    """Events in the event store afterwards."""

    @property
    def total_s(self) -> float:
        return sum(self.seconds.values())


@contextmanager
def estate_spec(granularity: str, start: date = START) -> Iterator[Path]:
    """The sample's spec, starting at `start`, with `estate.partitions` set."""
    with tempfile.TemporaryDirectory(prefix="bench-spec-") as folder:
        text = SAMPLE_SPEC.read_text()
        first = next(line for line in text.splitlines() if "first_partition:" in line)
        text = text.replace(
            first, f"  first_partition: {start.isoformat()}\n  partitions: {granularity}"
        )
        (Path(folder) / "analytics").symlink_to(SAMPLE_SPEC.parent / "analytics")
        path = Path(folder) / "strangler.yaml"
        path.write_text(text)
        yield path


def run(
    rows: int, days: int, granularity: str, stages: list[str], start: date = START
) -> HistoryRun:
    """Seconds per stage of `strangler migrate STAGE --from --to` over `days` days from
    `start` (partitions of `granularity`), and the events migrated."""
    settings = get_settings()
    tag = uuid.uuid4().hex[:8]
    end = start + timedelta(days=days - 1)
    with (
        scratch_database(settings.postgres_url, prefix="benchy") as url,
        scratch_database(settings.postgres_url, prefix="benchyd") as dagster_url,
        tempfile.TemporaryDirectory(prefix="bench-home-") as strangler_home,
        estate_spec(granularity, start) as spec,
    ):
        with psycopg.connect(url) as conn:
            seed(
                conn,
                seed=1,
                days=days,
                scale=rows / ROWS_PER_SCALE,
                dirty_rate=0.01,
                start_day=start,
            )
            conn.commit()
        instance = settings.model_copy(
            update={
                "home": Path(strangler_home),
                "dagster_postgres_db": urlparse(dagster_url).path.lstrip("/"),
            }
        )
        home = str(write_dagster_home(instance))
        env = {
            **os.environ,
            "STRANGLER_POSTGRES_URL": url,
            "STRANGLER_SPEC": str(spec),
            "STRANGLER_KAFKA_TOPIC_PREFIX": f"benchy{tag}.",
            "STRANGLER_CLICKHOUSE_DATABASE": f"benchy_{tag}",
            "DAGSTER_HOME": home,
        }
        cli = str(Path(sys.executable).with_name("strangler"))
        seconds: dict[str, float] = {}
        try:
            for stage in stages:
                started = time.perf_counter()
                done = subprocess.run(
                    [cli, "migrate", stage, "--from", start.isoformat(), "--to", end.isoformat()],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                seconds[stage] = time.perf_counter() - started
                print(f"  {stage} over {days} days: {seconds[stage]:.1f} s", flush=True)
                if done.returncode:
                    raise RuntimeError(f"{stage}: {done.stdout[-2000:]} {done.stderr[-2000:]}")
        finally:
            _drop(tag)
        with psycopg.connect(url) as conn:
            count = conn.execute("SELECT count(*) FROM eventstore.events").fetchone()
        return HistoryRun(seconds, int(count[0]) if count else 0)


def _drop(tag: str) -> None:
    settings = get_settings()
    kafka = KafkaResource(bootstrap_servers=settings.kafka_bootstrap)
    topics = [
        t for t in kafka.admin().list_topics(timeout=10).topics if t.startswith(f"benchy{tag}.")
    ]
    if topics:
        kafka.admin().delete_topics(topics)
    with ClickHouseResource(dsn=settings.clickhouse_url).client() as client:
        client.command(f"DROP DATABASE IF EXISTS benchy_{tag}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=1_826)
    parser.add_argument("--partitions", choices=["daily", "weekly", "monthly"], default="daily")
    parser.add_argument("--stages", default="events,kafka,clickhouse")
    args = parser.parse_args()
    drop_stray_bench_data()
    stages = args.stages.split(",")
    one_day = run(args.rows, 1, "daily", stages).seconds
    history = run(args.rows, args.days, args.partitions, stages).seconds
    print(f"{'stage':<12}{'one day s':>12}{'history s':>12}")
    for stage in stages:
        print(f"{stage:<12}{one_day[stage]:>12.1f}{history[stage]:>12.1f}")
    total_one, total_history = sum(one_day.values()), sum(history.values())
    print(f"{'total':<12}{total_one:>12.1f}{total_history:>12.1f}")
    print(
        f"history_5y ({args.rows} rows, {args.days} days, {args.partitions}):"
        f" ratio = {total_one / total_history:.2f} (one-day time / history time)"
    )


if __name__ == "__main__":
    main()
