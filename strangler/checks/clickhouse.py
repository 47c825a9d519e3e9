"""Checks that read ClickHouse: 3 events + view targets match, 6 known aggregates, 9 freshness.

The ClickHouse client is opened per query (`client_factory()` is a context manager): with the
embedded engine every open holds the cross-process lock, so a check never holds it long.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import psycopg

from strangler.analytics.ddl import DdlOptions, default_schema
from strangler.checks.diff import HASH_HEX, BucketSum, bisect_diff
from strangler.checks.event_store import EventStoreSide
from strangler.checks.kafka import freshness_outcome
from strangler.checks.outcome import CheckOutcome

SYSTEM = "clickhouse"
ClientFactory = Callable[[], AbstractContextManager[Any]]

_ID_TEXT = "toString(event_id)"
_HASH_CH = (
    f"reinterpretAsUInt64(reverse(unhex(concat('0000', substring({_ID_TEXT}, {37 - HASH_HEX},"
    f" {HASH_HEX})))))"
)


class ClickHouseSide:
    """D's rows of analytics.events as one side of a bisecting diff."""

    def __init__(
        self,
        client_factory: ClientFactory,
        ddl: DdlOptions,
        partition_key: str,
        label: str = "clickhouse",
    ) -> None:
        self.client_factory = client_factory
        self.table = ddl.table("events")
        self.key = partition_key
        self.label = label

    def _where(self, prefixes: Sequence[str] | None) -> tuple[str, dict[str, Any]]:
        where = "partition_day = {day:Date}"
        params: dict[str, Any] = {"day": self.key}
        if prefixes:
            where += f" AND arrayExists(p -> startsWith({_ID_TEXT}, p), {{prefixes:Array(String)}})"
            params["prefixes"] = list(prefixes)
        return where, params

    def query(self, depth: int = 2) -> str:
        return (
            f"SELECT substring({_ID_TEXT}, 1, {depth}) AS bucket, count(),"
            f" sum(toUInt128({_HASH_CH})) FROM {self.table}"
            f" WHERE partition_day = '{self.key}' GROUP BY bucket ORDER BY bucket"
        )

    def rows(self, query: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        with self.client_factory() as client:
            return [tuple(r) for r in client.query(query, parameters=params).result_rows]

    def summarize(self, depth: int, prefixes: Sequence[str] | None) -> dict[str, BucketSum]:
        where, params = self._where(prefixes)
        params["depth"] = depth
        rows = self.rows(
            f"SELECT substring({_ID_TEXT}, 1, {{depth:UInt8}}) AS b, count(),"
            f" toString(sum(toUInt128({_HASH_CH}))) FROM {self.table} WHERE {where} GROUP BY b",
            params,
        )
        return {str(r[0]): BucketSum(int(r[1]), int(r[2])) for r in rows}

    def ids(self, prefixes: Sequence[str]) -> Counter[str]:
        where, params = self._where(prefixes)
        rows = self.rows(f"SELECT {_ID_TEXT} FROM {self.table} WHERE {where}", params)
        return Counter(str(r[0]) for r in rows)


@dataclass(frozen=True)
class _Comparison:
    """A view target (or derived table) of D against a direct GROUP BY over events of D."""

    target: str
    target_sql: str
    direct_sql: str
    values: int = 1
    """Trailing columns that are measures; the ones before them are the key."""


def _comparisons(ddl: DdlOptions) -> list[_Comparison]:
    ev = ddl.table("events")
    day = "partition_day = {day:Date}"
    return [
        _Comparison(
            "event_counts_daily",
            f"SELECT event_type, customer_id, sum(events) FROM {ddl.table('event_counts_daily')}"
            f" WHERE {day} GROUP BY 1, 2",
            f"SELECT event_type, customer_id, count() FROM {ev} WHERE {day} GROUP BY 1, 2",
        ),
        _Comparison(
            "documents_status_daily",
            f"SELECT status, sum(documents) FROM {ddl.table('documents_status_daily')}"
            f" WHERE {day} GROUP BY 1",
            f"SELECT status, count() FROM {ev} WHERE {day}"
            " AND event_type IN ('DocumentUploaded', 'DocumentStatusChanged') GROUP BY 1",
        ),
        _Comparison(
            "processing_latency_daily",
            f"SELECT service, sum(jobs), sum(failed) FROM {ddl.table('processing_latency_daily')}"
            f" WHERE {day} GROUP BY 1",
            f"SELECT service, count(), countIf(event_type = 'ProcessingJobFailed') FROM {ev}"
            f" WHERE {day} AND event_type IN ('ProcessingJobCompleted', 'ProcessingJobFailed')"
            " AND duration_ms IS NOT NULL GROUP BY 1",
            values=2,
        ),
        _Comparison(
            "document_processing",
            f"SELECT 'jobs', count(), sum(job_id) FROM {ddl.table('document_processing')}"
            f" WHERE {day}",
            f"SELECT 'jobs', uniqExact(job_id), sum(DISTINCT job_id) FROM {ev}"
            f" WHERE {day} AND aggregate_type = 'ProcessingJob'",
            values=2,
        ),
    ]


def _grouped(
    side: ClickHouseSide, query: str, values: int
) -> dict[tuple[Any, ...], tuple[int, ...]]:
    """Key columns -> measures; all-zero rows dropped (a summed-away group is no group)."""
    out: dict[tuple[Any, ...], tuple[int, ...]] = {}
    for row in side.rows(query, {"day": side.key}):
        measures = tuple(int(v or 0) for v in row[len(row) - values :])
        if any(measures):
            out[tuple(row[: len(row) - values])] = measures
    return out


def _view_mismatches(side: ClickHouseSide, ddl: DdlOptions, sample: int) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for c in _comparisons(ddl):
        target = _grouped(side, c.target_sql, c.values)
        direct = _grouped(side, c.direct_sql, c.values)
        bad = [
            f"{c.target} {list(k)}: target {target.get(k)} vs events {direct.get(k)}"
            for k in sorted(set(target) | set(direct), key=str)
            if target.get(k) != direct.get(k)
        ]
        if bad:
            found[c.target] = bad[:sample]
    return found


def unchecked_targets() -> list[str]:
    """View targets / derived tables of the schema with no comparison here (add one)."""
    schema = default_schema()
    built = {d.target for d in (*schema.views, *schema.derived)}
    return sorted(built - {c.target for c in _comparisons(DdlOptions())})


@dataclass
class ClickHouseOutcomes:
    matches: CheckOutcome
    known_aggregates: CheckOutcome
    fresh: CheckOutcome


def check_clickhouse_day(
    conn: psycopg.Connection[Any],
    client_factory: ClientFactory,
    partition_key: str,
    *,
    ddl: DdlOptions | None = None,
    max_freshness_lag_s: float = 3_600.0,
    start_depth: int = 2,
    leaf_rows: int = 5_000,
    sample: int = 10,
) -> ClickHouseOutcomes:
    """Checks 3, 6 (ClickHouse) and 9 (ClickHouse) for D."""
    started = time.monotonic()
    ddl = ddl or DdlOptions()
    store = EventStoreSide(conn, partition_key, published_only=True)
    ch = ClickHouseSide(client_factory, ddl, partition_key)
    diff = bisect_diff(store, ch, start_depth=start_depth, leaf_rows=leaf_rows)
    views = _view_mismatches(ch, ddl, sample)
    offending = diff.culprits(sample) + [m for ms in views.values() for m in ms]
    reproduce = f"{store.query(start_depth)}  -- vs ClickHouse: {ch.query(start_depth)}"
    matches = CheckOutcome(
        name="clickhouse.matches_event_store",
        system=SYSTEM,
        partition_key=partition_key,
        passed=diff.equal and not views,
        description=(
            "D's event ids in analytics.events match the event store (count and per-bucket id "
            "hash sums), and every view target / derived table of D equals a direct GROUP BY "
            "over analytics.events."
        ),
        target=ddl.database,
        left_label="event_store",
        right_label="clickhouse",
        left_count=diff.left_count,
        right_count=diff.right_count,
        offending=offending[:sample],
        reproduce=reproduce,
        details={
            "missing": len(diff.missing),
            "extra": len(diff.extra),
            "duplicated": len(diff.duplicated),
            "buckets_compared": diff.buckets_compared,
            "differing_buckets": diff.differing_buckets[:20],
            "view_mismatches": {k: len(v) for k, v in views.items()},
            "unchecked_targets": unchecked_targets(),
        },
    )
    known = _known_aggregates(conn, ch, partition_key, sample)
    newest_ch = ch.rows(
        f"SELECT max(occurred_at), count() FROM {ch.table} WHERE partition_day = {{day:Date}}",
        {"day": partition_key},
    )[0]
    fresh = freshness_outcome(
        "clickhouse.fresh",
        SYSTEM,
        partition_key,
        ddl.database,
        store.newest(),
        newest_ch[0] if int(newest_ch[1]) else None,
        max_freshness_lag_s,
        f"SELECT max(occurred_at) FROM {ch.table} WHERE partition_day = '{partition_key}'",
    )
    conn.rollback()
    for o in (matches, known, fresh):
        o.duration_s = time.monotonic() - started
    return ClickHouseOutcomes(matches, known, fresh)


def _known_aggregates(
    conn: psycopg.Connection[Any], ch: ClickHouseSide, partition_key: str, sample: int
) -> CheckOutcome:
    """Check 6 (ClickHouse): every row's aggregate is one the event store knows."""
    here = {
        (str(r[0]), str(r[1]))
        for r in ch.rows(
            f"SELECT DISTINCT aggregate_type, aggregate_id FROM {ch.table}"
            " WHERE partition_day = {day:Date}",
            {"day": partition_key},
        )
    }
    day_known = {
        (r[0], r[1])
        for r in conn.execute(
            "SELECT DISTINCT aggregate_type, aggregate_id FROM eventstore.events"
            " WHERE partition_day = %s",
            (partition_key,),
        ).fetchall()
    }
    suspects = sorted(here - day_known)
    unknown: list[tuple[str, str]] = []
    if suspects:
        found = {
            (r[0], r[1])
            for r in conn.execute(
                "SELECT DISTINCT e.aggregate_type, e.aggregate_id FROM eventstore.events e"
                " JOIN unnest(%s::text[], %s::text[]) AS k(t, i)"
                " ON e.aggregate_type = k.t AND e.aggregate_id = k.i",
                ([s[0] for s in suspects], [s[1] for s in suspects]),
            ).fetchall()
        }
        unknown = [s for s in suspects if s not in found]
    return CheckOutcome(
        name="clickhouse.known_aggregates",
        system=SYSTEM,
        partition_key=partition_key,
        passed=not unknown,
        description="Every analytics.events row of D belongs to an aggregate the event store knows.",
        target=ch.table.replace("`", ""),
        left_label="aggregates",
        right_label="unknown",
        left_count=len(here),
        right_count=len(unknown),
        offending=[f"{t}:{i}" for t, i in unknown[:sample]],
        reproduce=(
            f"SELECT DISTINCT aggregate_type, aggregate_id FROM {ch.table}"
            f" WHERE partition_day = '{partition_key}'  -- each must exist in eventstore.events"
        ),
    )
