"""Benchmark: one generated partition of N events through every stage of the spec path.

    .venv/bin/python -m bench.bench_chain --events 100000 --events 1000000 --json bench.json
    make bench                      # the same, 100k and 1M events

For each N: a scratch database seeded with one day of the sample monolith (about N events),
then, on the estate spec's own path (the code the Dagster assets call):

| stage | ours | raw baseline, same run |
|---|---|---|
| event_store | `PartitionMigration` of the day (child process: its own peak RSS) | `COPY` of the very events + outbox rows it wrote into empty twins |
| relay | `DayRelay` of the day's outbox into fresh topics | Kafka's `ProducerPerformance`, same record count and mean size |
| monolith_to_kafka | event_store + relay time | COPY time + ProducerPerformance time |
| clickhouse | `analytics.sink.load_partition` from the relayed offset ranges, into a database whose tables exist (a day's load in steady state; the first load also creates them, ~1 s) | `insert_arrow` of the same rows into an empty twin |
| clickhouse_check | `check_clickhouse_partition` of the clean day | `count(*)` of the day on both sides |
| weaviate_import | `search.sink.run_day` with precomputed vectors (no model) | client batch import of the same objects + vectors |
| embedding | the default backend through the sink's encoder, on a sample of pages | raw `model.encode` (fp32 torch) of the same pages |
| history_5y | `strangler migrate events/kafka/clickhouse --from --to` over 5 years | the same rows in one day |

events/s is ours, baseline_per_s the baseline's, ratio = ours / baseline (for history_5y:
one-day time / five-year time). Peak RSS is the process's peak while the stage ran (sampled).
Everything lives in throwaway databases, topics, ClickHouse databases and collections.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from bench.bench_history import run as history_run
from bench.common import DAY, PeakRss, drop_stray_bench_data, seeded_day
from strangler.resources.clickhouse import ClickHouseResource
from strangler.resources.embeddings import EmbedderResource
from strangler.resources.kafka import KafkaResource
from strangler.settings import get_settings
from strangler.spec import current_spec
from strangler.spec.models import EstateSpec

STAGES = (
    "event_store",
    "relay",
    "monolith_to_kafka",
    "clickhouse",
    "clickhouse_check",
    "weaviate_import",
    "embedding",
    "history_5y",
)
EVENTS_PER_ROW = 1.4
"""Events per monolith row of the sample seed (measured: 100k rows -> ~140k events)."""


@dataclass
class StageRow:
    stage: str
    events: int
    events_per_s: float
    baseline_per_s: float
    ratio: float
    peak_rss_mib: float
    seconds: float = 0.0
    baseline_s: float = 0.0
    note: str = ""


@dataclass
class ChainContext:
    """What the stages of one N share: the scratch database, names and clients."""

    url: str
    spec: EstateSpec
    tag: str
    kafka: KafkaResource
    clickhouse: ClickHouseResource
    key: str = DAY.isoformat()
    rows: dict[str, StageRow] = field(default_factory=dict)

    @property
    def topics(self) -> list[str]:
        return [self.kafka.topic(t) for t in self.spec.topics.values()]


def _rate(events: int, seconds: float) -> float:
    return events / seconds if seconds > 0 else 0.0


def _row(
    stage: str, events: int, seconds: float, baseline_s: float, rss: PeakRss, note: str = ""
) -> StageRow:
    ours, base = _rate(events, seconds), _rate(events, baseline_s)
    return StageRow(
        stage=stage,
        events=events,
        events_per_s=round(ours, 1),
        baseline_per_s=round(base, 1),
        ratio=round(ours / base, 4) if base else 0.0,
        peak_rss_mib=round(rss.peak / 2**20, 1),
        seconds=round(seconds, 3),
        baseline_s=round(baseline_s, 3),
        note=note,
    )


# -- event store ---------------------------------------------------------------------------

MIGRATE_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    from strangler.migration.partition_run import PartitionMigration, RunOptions
    t0 = time.perf_counter()
    r = PartitionMigration(sys.argv[1], sys.argv[2], options=RunOptions(topic_prefix=sys.argv[3]),
                           report=lambda m: None).run()
    print(json.dumps({"seconds": time.perf_counter() - t0, "events": r.events_written,
                      "rows": r.source_rows, "failed": r.failed,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    """
)


def raw_copy(url: str) -> tuple[float, int]:
    """Seconds to COPY the stored events + outbox rows into identical empty tables, and the
    number of events copied."""
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
        conn.execute("DROP TABLE public.raw_events, public.raw_outbox")
        conn.commit()
    return seconds, int(count[0]) if count else 0


def stage_event_store(ctx: ChainContext) -> StageRow:
    child = subprocess.run(
        [sys.executable, "-c", MIGRATE_CHILD, ctx.url, ctx.key, ctx.kafka.topic_prefix],
        capture_output=True,
        text=True,
        check=True,
    )
    run = json.loads(child.stdout.strip().splitlines()[-1])
    copy_s, copied = raw_copy(ctx.url)
    ours, base = _rate(run["events"], run["seconds"]), _rate(copied, copy_s)
    return StageRow(
        stage="event_store",
        events=run["events"],
        events_per_s=round(ours, 1),
        baseline_per_s=round(base, 1),
        ratio=round(ours / base, 4) if base else 0.0,
        peak_rss_mib=round(run["peak_rss_mib"], 1),
        seconds=round(run["seconds"], 3),
        baseline_s=round(copy_s, 3),
        note=f"{run['rows']} source rows, {run['failed']} failed",
    )


# -- relay ---------------------------------------------------------------------------------


def producer_performance(records: int, record_size: int, bootstrap: str) -> float:
    """records/s of Kafka's own producer perf tool on a fresh topic shaped like ours."""
    from strangler.migration.topics import ensure_topics
    from strangler.stack.kafka import KafkaService

    settings = get_settings()
    kafka = KafkaResource(bootstrap_servers=bootstrap)
    topic = f"bench.perf.{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka.admin(), _topic_specs("", [topic]))
    try:
        out = subprocess.run(
            [
                "java",
                "-Xmx1g",
                "-cp",
                f"{KafkaService(settings).libs_dir}/*",
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
    finally:
        kafka.admin().delete_topics([topic])
    match = re.search(r"(\d+) records sent, ([\d.]+) records/sec", out)
    if match is None:
        raise RuntimeError(f"unexpected ProducerPerformance output: {out[-500:]}")
    return float(match.group(2))


def _topic_specs(prefix: str, names: Sequence[str]) -> list[Any]:
    from strangler.migration.topics import domain_topic_specs

    settings = get_settings()
    return domain_topic_specs(
        prefix,
        partitions=settings.kafka_partitions,
        replication_factor=1,
        min_insync_replicas=1,
        retention_days=1,
        compaction=False,
        message_max_bytes=settings.kafka_message_max_bytes,
        names=names,
    )


def stage_relay(ctx: ChainContext) -> StageRow:
    from strangler.migration.outbox_relay import DayRelay, RelayOptions
    from strangler.migration.topics import ensure_topics, progress_topic_spec

    settings = get_settings()
    progress = progress_topic_spec(ctx.kafka.topic_prefix, 1)
    ensure_topics(
        ctx.kafka.admin(),
        [*_topic_specs(ctx.kafka.topic_prefix, list(ctx.spec.topics.values())), progress],
    )
    with psycopg.connect(ctx.url) as conn:
        row = conn.execute(
            "SELECT count(*), avg(octet_length(payload::text)) FROM eventstore.outbox"
        ).fetchone()
    assert row is not None
    total, mean_size = int(row[0]), int(row[1] or 1)
    with PeakRss() as rss:
        t0 = time.perf_counter()
        results = DayRelay(
            ctx.url,
            ctx.kafka,
            ctx.key,
            ctx.topics,
            progress.name,
            options=RelayOptions(workers=settings.relay_workers),
            report=lambda m: None,
        ).run()
        seconds = time.perf_counter() - t0
    published = sum(r.published for r in results)
    perf = producer_performance(total, mean_size, settings.kafka_bootstrap)
    if perf <= 0:
        raise RuntimeError(f"ProducerPerformance reported {perf} records/s")
    return _row("relay", published, seconds, published / perf, rss, f"{mean_size} B/record")


def stage_monolith_to_kafka(ctx: ChainContext) -> StageRow:
    store, relay = ctx.rows["event_store"], ctx.rows["relay"]
    seconds = store.seconds + relay.seconds
    baseline_s = store.baseline_s + relay.baseline_s
    ours, base = _rate(relay.events, seconds), _rate(relay.events, baseline_s)
    return StageRow(
        stage="monolith_to_kafka",
        events=relay.events,
        events_per_s=round(ours, 1),
        baseline_per_s=round(base, 1),
        ratio=round(ours / base, 4) if base else 0.0,
        peak_rss_mib=max(store.peak_rss_mib, relay.peak_rss_mib),
        seconds=round(seconds, 3),
        baseline_s=round(baseline_s, 3),
        note="event_store + relay vs COPY + ProducerPerformance",
    )


# -- ClickHouse ----------------------------------------------------------------------------


def _ddl(ctx: ChainContext) -> Any:
    from strangler.analytics.ddl import DdlOptions

    return DdlOptions(database=f"bench_{ctx.tag}")


def stage_clickhouse(ctx: ChainContext) -> StageRow:
    from strangler.analytics.ddl import apply_schema
    from strangler.analytics.estate_ddl import estate_schema
    from strangler.analytics.sink import SinkOptions, load_partition

    ddl = _ddl(ctx)
    with psycopg.connect(ctx.url) as conn, ctx.clickhouse.client() as c:
        apply_schema(c, ddl, estate_schema(conn, ctx.spec))
    with PeakRss() as rss:
        t0 = time.perf_counter()
        result = load_partition(
            ctx.key,
            clickhouse=ctx.clickhouse.client,
            postgres_conninfo=ctx.url,
            consumer_factory=ctx.kafka.consumer,
            topic_prefix=ctx.kafka.topic_prefix,
            options=SinkOptions(ddl=ddl, consumer_group=f"bench-{ctx.tag}"),
            spec=ctx.spec,
        )
        seconds = time.perf_counter() - t0
    rows = result.rows
    with ctx.clickhouse.client() as c:
        live = ddl.table("events")
        raw = ddl.table("bench_raw_events")
        arrow = c.query_arrow(f"SELECT * FROM {live}")
        c.command(f"CREATE TABLE {raw} AS {live}")
        t0 = time.perf_counter()
        for batch in arrow.to_batches(max_chunksize=100_000):
            c.insert_arrow(raw, _table(batch))
        raw_s = time.perf_counter() - t0
        c.command(f"DROP TABLE {raw}")
    return _row("clickhouse", rows, seconds, raw_s, rss, f"source {result.source}")


def _table(batch: Any) -> Any:
    import pyarrow as pa

    return pa.Table.from_batches([batch])


def stage_clickhouse_check(ctx: ChainContext) -> StageRow:
    from strangler.checks.clickhouse import check_clickhouse_partition

    ddl = _ddl(ctx)
    events = ctx.rows["clickhouse"].events
    with psycopg.connect(ctx.url, autocommit=True) as conn:
        with PeakRss() as rss:
            t0 = time.perf_counter()
            outcomes = check_clickhouse_partition(
                ctx.spec, conn, ctx.clickhouse.client, ctx.key, ddl=ddl
            )
            seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        conn.execute(
            "SELECT count(*) FROM eventstore.events WHERE partition_day = %s", (ctx.key,)
        ).fetchone()
        with ctx.clickhouse.client() as c:
            c.query(
                f"SELECT count() FROM {ddl.table('events')} WHERE partition_key = {{k:String}}",
                parameters={"k": ctx.key},
            )
        count_s = time.perf_counter() - t0
    failed = [o.name for o in outcomes if not o.passed]
    note = f"{len(outcomes)} checks, {len(failed)} failed" + (
        f" ({', '.join(failed[:3])})" if failed else ""
    )
    return _row("clickhouse_check", events, seconds, count_s, rss, note)


# -- Weaviate and embeddings ---------------------------------------------------------------


class PrecomputedVectors:
    """An encoder whose vectors are already known: a unit vector derived from each text's
    hash, so the Weaviate stage measures the loading, not the model. Tokenizer and window
    are the real model's, so chunking is the same as in production."""

    def __init__(self, model: EmbedderResource) -> None:
        self.model = model

    @property
    def model_name(self) -> str:
        return "precomputed"

    @property
    def dimension(self) -> int:
        return self.model.dimension

    @property
    def max_tokens(self) -> int:
        return self.model.max_tokens

    def tokenizer(self) -> object:
        return self.model.tokenizer()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            seed_bytes = hashlib.blake2b(text.encode(), digest_size=8).digest()
            rng = np.random.default_rng(int.from_bytes(seed_bytes, "little"))
            v = rng.standard_normal(self.dimension).astype(np.float32)
            out[i] = v / np.linalg.norm(v)
        return out


def stage_weaviate_import(ctx: ChainContext) -> StageRow:
    from strangler.resources.weaviate import WeaviateResource
    from strangler.search.embedding_cache import CachedEncoder
    from strangler.search.schema import CollectionNames
    from strangler.search.sink import SinkOptions, run_day

    settings = get_settings()
    weaviate = WeaviateResource(url=settings.weaviate_url, grpc_port=settings.weaviate_grpc_port)
    names = CollectionNames(f"Bench{ctx.tag}")
    encoder = CachedEncoder(PrecomputedVectors(EmbedderResource()), None)
    encoder.encoder.tokenizer()  # load the model's tokenizer before the clock starts
    collections = [names.of(a.name) for a in ctx.spec.searchable]
    raw_names = [f"{c}Raw" for c in collections]
    with weaviate.client() as client:
        try:
            with psycopg.connect(ctx.url) as conn, PeakRss() as rss:
                t0 = time.perf_counter()
                result = run_day(
                    conn=conn,
                    client=client,
                    encoder=encoder,
                    kafka=ctx.kafka,
                    spec=ctx.spec,
                    day=ctx.key,
                    run_id=f"bench-{ctx.tag}",
                    options=SinkOptions(names=names, consumer_group=f"bench-wv-{ctx.tag}"),
                )
                seconds = time.perf_counter() - t0
            raw_s = 0.0
            for name, raw_name in zip(collections, raw_names, strict=True):
                raw_s += _raw_weaviate_import(client, name, raw_name)
        finally:
            for name in [*collections, *raw_names]:
                if client.collections.exists(name):
                    client.collections.delete(name)
    return _row(
        "weaviate_import",
        result.objects,
        seconds,
        raw_s,
        rss,
        f"{result.failed} failed, {len(collections)} collections",
    )


def _raw_weaviate_import(client: Any, name: str, raw_name: str) -> float:
    """Seconds for a plain client batch import of `name`'s objects and vectors (read first,
    untimed) into an empty collection with the same configuration, references left out."""
    source = client.collections.get(name)
    config = source.config.get()
    if config.multi_tenancy_config.enabled:
        return 0.0
    objects = [
        (o.properties, o.vector.get("default") if isinstance(o.vector, dict) else o.vector)
        for o in source.iterator(include_vector=True)
    ]
    config_dict = config.to_dict()
    config_dict["class"] = raw_name
    config_dict.pop("references", None)
    client.collections.create_from_dict(config_dict)
    raw = client.collections.get(raw_name)
    t0 = time.perf_counter()
    with raw.batch.fixed_size(batch_size=500, concurrent_requests=2) as batch:
        for properties, vector in objects:
            batch.add_object(properties=properties, vector=vector)
    seconds = time.perf_counter() - t0
    if raw.batch.failed_objects:
        raise RuntimeError(f"raw import failed: {raw.batch.failed_objects[:2]}")
    return seconds


def stage_embedding(ctx: ChainContext, texts: int) -> StageRow:
    from bench.common import page_texts
    from strangler.search.embedding_cache import CachedEncoder

    pages = page_texts(texts)
    with tempfile.TemporaryDirectory(prefix="bench-embed-") as tmp:
        default = EmbedderResource(cache_dir=tmp)
        reference = EmbedderResource(backend="torch", cache_dir=tmp)
        encoder = CachedEncoder(default, None)
        encoder.encode(pages[:4])
        reference.encode(pages[:4])
        with PeakRss() as rss:
            t0 = time.perf_counter()
            encoder.encode(pages)
            seconds = time.perf_counter() - t0
        model = reference.model()
        t0 = time.perf_counter()
        model.encode(pages, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        raw_s = time.perf_counter() - t0
    return _row(
        "embedding", len(pages), seconds, raw_s, rss, f"{default.backend} vs raw torch fp32"
    )


# -- five years of history -----------------------------------------------------------------


def stage_history(rows: int, days: int, start: date, granularity: str = "daily") -> StageRow:
    """`strangler migrate events / kafka / clickhouse --from --to` (the stages of `migrate all`
    without Weaviate) over `days` days holding `rows` rows, against the same rows in one day:
    `bench.bench_history.run` (a Dagster instance in Postgres, as the stack's)."""
    stages = ["events", "kafka", "clickhouse"]
    with PeakRss() as rss:
        spread = history_run(rows, days, granularity, stages, start)
        one_day = history_run(rows, 1, "daily", stages, start)
    return StageRow(
        stage="history_5y",
        events=spread.events,
        events_per_s=round(_rate(spread.events, spread.total_s), 1),
        baseline_per_s=round(_rate(one_day.events, one_day.total_s), 1),
        ratio=round(one_day.total_s / spread.total_s, 4) if spread.total_s else 0.0,
        peak_rss_mib=round(rss.peak / 2**20, 1),
        seconds=round(spread.total_s, 3),
        baseline_s=round(one_day.total_s, 3),
        note=f"{rows} rows over {days} days ({granularity}) from {start} vs one day"
        " (CLI, Weaviate off)",
    )


# -- the chain -----------------------------------------------------------------------------


def run_chain(
    events: int,
    *,
    stages: Sequence[str] = STAGES,
    embed_texts: int = 256,
    history_rows: int = 100_000,
    history_days: int = 1_826,
    history_start: date = date(2021, 1, 1),
    history_partitions: str = "daily",
    on_row: Callable[[StageRow], None] = lambda _r: None,
) -> list[StageRow]:
    """Every selected stage for one generated day of about `events` events."""
    settings = get_settings()
    spec = current_spec()
    tag = uuid.uuid4().hex[:8]
    kafka = KafkaResource(bootstrap_servers=settings.kafka_bootstrap, topic_prefix=f"bench{tag}.")
    clickhouse = ClickHouseResource(dsn=settings.clickhouse_url)
    chain = [s for s in STAGES if s in stages and s != "history_5y"]
    out: list[StageRow] = []
    if chain:
        with seeded_day(int(events / EVENTS_PER_ROW)) as url:
            ctx = ChainContext(url, spec, tag, kafka, clickhouse)
            steps: dict[str, Callable[[], StageRow]] = {
                "event_store": lambda: stage_event_store(ctx),
                "relay": lambda: stage_relay(ctx),
                "monolith_to_kafka": lambda: stage_monolith_to_kafka(ctx),
                "clickhouse": lambda: stage_clickhouse(ctx),
                "clickhouse_check": lambda: stage_clickhouse_check(ctx),
                "weaviate_import": lambda: stage_weaviate_import(ctx),
                "embedding": lambda: stage_embedding(ctx, embed_texts),
            }
            needs = {
                "relay": ["event_store"],
                "monolith_to_kafka": ["event_store", "relay"],
                "clickhouse": ["event_store", "relay"],
                "clickhouse_check": ["event_store", "relay", "clickhouse"],
                "weaviate_import": ["event_store", "relay"],
            }
            todo = [s for s in STAGES if s in chain or any(s in needs.get(c, []) for c in chain)]
            try:
                for stage in todo:
                    row = steps[stage]()
                    ctx.rows[stage] = row
                    if stage in chain:
                        out.append(row)
                        on_row(row)
            finally:
                _drop_chain(ctx)
    if "history_5y" in stages:
        row = stage_history(history_rows, history_days, history_start, history_partitions)
        out.append(row)
        on_row(row)
    return out


def _drop_chain(ctx: ChainContext) -> None:
    admin = ctx.kafka.admin()
    topics = [
        t for t in admin.list_topics(timeout=10).topics if t.startswith(ctx.kafka.topic_prefix)
    ]
    if topics:
        admin.delete_topics(topics)
    with ctx.clickhouse.client() as c:
        c.command(f"DROP DATABASE IF EXISTS bench_{ctx.tag}")


HEADER = (
    f"{'stage':<18} {'events':>9} {'events/s':>10} {'baseline/s':>11} {'ratio':>7}"
    f" {'peak RSS MiB':>12}  note"
)


def format_row(row: StageRow) -> str:
    return (
        f"{row.stage:<18} {row.events:>9} {row.events_per_s:>10.1f} {row.baseline_per_s:>11.1f}"
        f" {row.ratio:>7.3f} {row.peak_rss_mib:>12.0f}  {row.note}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, action="append", help="Events per day (repeatable).")
    parser.add_argument("--stages", default=",".join(STAGES), help="Comma-separated subset.")
    parser.add_argument(
        "--embed-texts", type=int, default=256, help="Pages of the embedding stage."
    )
    parser.add_argument("--history-rows", type=int, default=100_000)
    parser.add_argument(
        "--history-days", type=int, default=1_826, help="Days of history (5 years)."
    )
    parser.add_argument("--history-start", type=date.fromisoformat, default=date(2021, 1, 1))
    parser.add_argument(
        "--history-partitions",
        choices=["daily", "weekly", "monthly"],
        default="daily",
        help="Partitions of the history's estate (the one-day baseline is daily).",
    )
    parser.add_argument("--json", type=Path, help="Also write the rows as a JSON list.")
    args = parser.parse_args(argv)
    drop_stray_bench_data()
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = set(stages) - set(STAGES)
    if unknown:
        parser.error(f"unknown stages {sorted(unknown)}; choose from {', '.join(STAGES)}")
    rows: list[StageRow] = []
    for i, events in enumerate(args.events or [100_000, 1_000_000]):
        # The history does not depend on N: measured once, with the first size.
        selected = [s for s in stages if s != "history_5y" or i == 0]
        print(f"\n{events} events, {os.cpu_count()} CPU cores\n{HEADER}", flush=True)
        rows += run_chain(
            events,
            stages=selected,
            embed_texts=args.embed_texts,
            history_rows=args.history_rows,
            history_days=args.history_days,
            history_start=args.history_start,
            history_partitions=args.history_partitions,
            on_row=lambda row: print(format_row(row), flush=True),
        )
    if args.json:
        keys = ("stage", "events", "events_per_s", "baseline_per_s", "ratio", "peak_rss_mib")
        args.json.write_text(json.dumps([{k: asdict(r)[k] for k in keys} for r in rows], indent=2))


if __name__ == "__main__":
    main()
