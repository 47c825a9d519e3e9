"""Checks that read the event store (Postgres): 1 monolith accounted, 5 versions, 10 failures.

Also the event store's side of the id diffs (`EventStoreSide`): D's events, optionally only
some aggregate types, optionally without the ones the relay parked as too large for Kafka.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from datetime import date
from typing import Any

import psycopg
from psycopg import sql

from strangler.checks.diff import HASH_HEX, BucketSum
from strangler.checks.outcome import CheckOutcome
from strangler.migration import source
from strangler.migration.deletes import by_source_ids
from strangler.migration.partition_run import MIGRATION as STORE_MIGRATION
from strangler.spec import EstateSpec, current_spec
from strangler.spec.models import Aggregate

SYSTEM = "event-store"
KAFKA_MIGRATION = "kafka"

_HASH_PG = f"('x' || right(e.event_id::text, {HASH_HEX}))::bit({HASH_HEX * 4})::bigint"
_NOT_PARKED = (
    "NOT EXISTS (SELECT 1 FROM migration_state.failed_entities f"
    " WHERE f.migration = 'kafka' AND f.source_table = 'eventstore.outbox'"
    " AND f.source_key = e.position::text AND f.resolved_at IS NULL)"
)


class EventStoreSide:
    """D's events as one side of a bisecting diff."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        partition_key: str,
        aggregate_types: Sequence[str] | None = None,
        *,
        published_only: bool = True,
        label: str = "event_store",
    ) -> None:
        self.conn = conn
        self.key = partition_key
        self.types = list(aggregate_types) if aggregate_types else None
        self.published_only = published_only
        self.label = label

    def _where(self, prefixes: Sequence[str] | None) -> tuple[str, dict[str, Any]]:
        clauses = ["e.partition_key = %(day)s"]
        params: dict[str, Any] = {"day": self.key}
        if self.types:
            clauses.append("e.aggregate_type = ANY(%(types)s)")
            params["types"] = self.types
        if self.published_only:
            clauses.append(_NOT_PARKED)
        if prefixes:
            clauses.append(
                "EXISTS (SELECT 1 FROM unnest(%(prefixes)s::text[]) p"
                " WHERE starts_with(e.event_id::text, p))"
            )
            params["prefixes"] = list(prefixes)
        return " AND ".join(clauses), params

    def query(self, depth: int = 2) -> str:
        """The grouped scan, as a person would paste it into psql."""
        where, _ = self._where(None)
        where = where.replace("%(day)s", f"'{self.key}'")
        if self.types:
            where = where.replace(
                "%(types)s", "ARRAY[" + ", ".join(f"'{t}'" for t in self.types) + "]"
            )
        return (
            f"SELECT left(e.event_id::text, {depth}) AS bucket, count(*), sum({_HASH_PG})"
            f" FROM eventstore.events e WHERE {where} GROUP BY 1 ORDER BY 1"
        )

    def summarize(self, depth: int, prefixes: Sequence[str] | None) -> dict[str, BucketSum]:
        where, params = self._where(prefixes)
        params["depth"] = depth
        rows = self.conn.execute(
            f"SELECT left(e.event_id::text, %(depth)s), count(*), sum({_HASH_PG})"
            f" FROM eventstore.events e WHERE {where} GROUP BY 1",
            params,
        ).fetchall()
        return {r[0]: BucketSum(int(r[1]), int(r[2])) for r in rows}

    def ids(self, prefixes: Sequence[str]) -> Counter[str]:
        where, params = self._where(prefixes)
        rows = self.conn.execute(
            f"SELECT e.event_id::text FROM eventstore.events e WHERE {where}", params
        ).fetchall()
        return Counter(r[0] for r in rows)

    def newest(self) -> Any:
        where, params = self._where(None)
        row = self.conn.execute(
            f"SELECT max(e.occurred_at) FROM eventstore.events e WHERE {where}", params
        ).fetchone()
        return row[0] if row else None


def _accounted_ids(
    conn: psycopg.Connection[Any], aggregate: Aggregate, ids: list[str]
) -> tuple[set[str], set[str]]:
    """Of these row ids: which have events, which have an unresolved failure."""
    where, params = by_source_ids(aggregate, ids)
    with_events = {
        str(r[0])
        for r in conn.execute(
            f"SELECT DISTINCT metadata ->> 'source_id' FROM eventstore.events WHERE {where}",
            params,
        )
    }
    failed = {
        str(r[0])
        for r in conn.execute(
            "SELECT DISTINCT source_key FROM migration_state.failed_entities WHERE migration = %s"
            " AND source_table = %s AND source_key = ANY(%s) AND resolved_at IS NULL",
            (STORE_MIGRATION, aggregate.source.table, ids),
        )
    }
    return with_events, failed


def check_monolith_accounted(
    conn: psycopg.Connection[Any],
    partition_key: str,
    *,
    sample: int = 10,
    spec: EstateSpec | None = None,
    monolith: psycopg.Connection[Any] | None = None,
    batch_size: int = 5_000,
) -> CheckOutcome:
    """Check 1: every source row of D has events or an unresolved failed_entities row.

    The monolith may be another database: its keys are read there (read-only) in batches
    and looked up in the estate, so memory stays flat and no cross-database join is needed.
    """
    started = time.monotonic()
    spec = spec or current_spec()
    window = source.Window.for_key(partition_key, spec.estate)
    aggregates = spec.reference if window.is_reference else spec.daily
    reader = monolith or conn
    per_table: dict[str, dict[str, int]] = {}
    offending: list[str] = []
    total = accounted = 0
    for aggregate in aggregates:
        stats = {"rows": 0, "with_events": 0, "failed": 0, "unaccounted": 0}
        where, params = source.window_where(spec, aggregate, window)
        query = sql.SQL("SELECT {k} FROM {t} t WHERE {w} ORDER BY 1").format(
            k=source.key_text("t", aggregate.source.primary_key),
            t=source.table_ref(aggregate),
            w=where,
        )
        with reader.cursor(name=f"accounted_{aggregate.source.table}") as cur:
            cur.execute(query, params)
            while batch := [str(r[0]) for r in cur.fetchmany(batch_size)]:
                with_events, failed = _accounted_ids(conn, aggregate, batch)
                lost = [i for i in batch if i not in with_events and i not in failed]
                stats["rows"] += len(batch)
                stats["with_events"] += len(with_events)
                stats["failed"] += len(failed)
                stats["unaccounted"] += len(lost)
                offending += [f"{aggregate.source.table}:{i}" for i in lost[:sample]]
        reader.commit()
        per_table[aggregate.source.table] = stats
        total += stats["rows"]
        accounted += stats["rows"] - stats["unaccounted"]
    passed = total == accounted
    return CheckOutcome(
        name="event_store.monolith_accounted",
        system=SYSTEM,
        partition_key=partition_key,
        passed=passed,
        description=(
            "Every monolith row of the partition has events in the event store or an "
            "unresolved failed_entities row."
        ),
        left_label="source_rows",
        right_label="accounted_rows",
        left_count=total,
        right_count=accounted,
        offending=offending[:sample],
        reproduce=(
            "per table of the spec: the partition's primary keys in the monolith, minus"
            " eventstore.events.metadata->>'source_id' (same source_table), minus"
            " migration_state.failed_entities.source_key (migration 'event_store', unresolved)"
        ),
        details={"per_table": per_table},
        duration_s=time.monotonic() - started,
    )


_VERSIONS = """
SELECT aggregate_type, aggregate_id, array_agg(aggregate_version ORDER BY position)
FROM (SELECT aggregate_type, aggregate_id, aggregate_version, position,
             row_number() OVER (PARTITION BY aggregate_type, aggregate_id ORDER BY position) AS rn
      FROM eventstore.events WHERE partition_key = %s) s
GROUP BY 1, 2
HAVING bool_or(aggregate_version <> rn)
ORDER BY 1, 2
"""


def check_store_versions(
    conn: psycopg.Connection[Any], partition_key: str, *, sample: int = 10
) -> CheckOutcome:
    """Check 5 (event store): per aggregate, in append order, versions are exactly 1, 2, ..., n.

    Catches gaps, duplicates, a stream not starting at 1, and versions swapped against the
    order they were appended in.
    """
    started = time.monotonic()
    rows = conn.execute(_VERSIONS, (partition_key,)).fetchall()
    aggregates = conn.execute(
        "SELECT count(DISTINCT (aggregate_type, aggregate_id)), count(*) FROM eventstore.events"
        " WHERE partition_key = %s",
        (partition_key,),
    ).fetchone()
    n_aggregates = int(aggregates[0]) if aggregates else 0
    return CheckOutcome(
        name="event_store.versions_ordered",
        system=SYSTEM,
        partition_key=partition_key,
        passed=not rows,
        description=(
            "Per aggregate, versions in append (position) order are 1..n: contiguous, "
            "no duplicate, none swapped."
        ),
        left_label="aggregates",
        right_label="out_of_order",
        left_count=n_aggregates,
        right_count=len(rows),
        offending=[f"{r[0]}:{r[1]} versions by position {list(r[2])}" for r in rows[:sample]],
        reproduce=" ".join(_VERSIONS.replace("%s", f"'{partition_key}'").split()),
        details={"events": int(aggregates[1]) if aggregates else 0},
        duration_s=time.monotonic() - started,
    )


def check_failed_entities(
    conn: psycopg.Connection[Any], partition_key: str, *, max_unresolved: int, sample: int = 10
) -> CheckOutcome:
    """Check 10: unresolved failed_entities of D (every migration) stay under a threshold."""
    started = time.monotonic()
    rows = conn.execute(
        "SELECT migration, source_table, rule, count(*),"
        " (array_agg(source_key ORDER BY failure_id))[1:3]"
        " FROM migration_state.failed_entities WHERE partition_key = %s AND resolved_at IS NULL"
        " GROUP BY 1, 2, 3 ORDER BY 4 DESC",
        (partition_key,),
    ).fetchall()
    total = sum(int(r[3]) for r in rows)
    by_rule = {f"{r[0]}/{r[1]}/{r[2]}": int(r[3]) for r in rows}
    offending = [f"{r[0]}/{r[1]}/{r[2]}: {r[3]} (e.g. {', '.join(r[4])})" for r in rows[:sample]]
    return CheckOutcome(
        name="event_store.failed_entities_bounded",
        system=SYSTEM,
        partition_key=partition_key,
        passed=total <= max_unresolved,
        description=f"Unresolved failed_entities of the day are at most {max_unresolved}.",
        left_label="unresolved",
        right_label="threshold",
        left_count=total,
        right_count=max_unresolved,
        offending=offending if total > max_unresolved else [],
        reproduce=(
            "SELECT migration, source_table, rule, count(*) FROM migration_state.failed_entities"
            f" WHERE partition_key = '{partition_key}' AND resolved_at IS NULL GROUP BY 1, 2, 3"
        ),
        severity="WARN",
        details={"by_rule": by_rule},
        duration_s=time.monotonic() - started,
    )


def _date(partition_key: str) -> date:
    return date.fromisoformat(partition_key)
