"""Checks that read ClickHouse, per partition, for any spec: ids, aggregates, freshness, views,
current state.

- `clickhouse.matches_event_store`: P's event ids in `events` equal the event store's (count
  and a sum of per-id hashes; on a difference a bisecting diff names the culprits);
- `clickhouse.known_aggregates`: every (aggregate type, event type, source table) of P's rows
  is one the spec declares;
- `clickhouse.fresh`: P's newest event time is close to the event store's;
- `clickhouse.views_match_rebuild`: every derived table and view target of the user's
  analytics equals a direct rebuild from P's events (count and a hash of its rows; aggregate
  states are compared by their keys only, their bytes depend on merge order);
- `clickhouse.current_state`: per aggregate, the current-state table's live rows of P (FINAL)
  equal the event store's live rows of P (rows without a delete event after their import):
  count and a sum of key hashes.

Cost: one grouped scan of P in the event store and one client session with a few aggregate
queries in ClickHouse (the embedded engine's open is the dearest part: it is paid once).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import psycopg

from strangler.analytics.ddl import DdlOptions, Schema, build_schema, quote_identifier
from strangler.analytics.state import state_table
from strangler.analytics.swap import EVENTS_TABLE, partition_key_of
from strangler.checks.diff import HASH_HEX, BucketSum, bisect_diff
from strangler.checks.event_store import _NOT_PARKED, EventStoreSide
from strangler.checks.kafka import freshness_outcome
from strangler.checks.outcome import CheckOutcome
from strangler.spec import EstateSpec

SYSTEM = "clickhouse"

_ID_TEXT = "toString(event_id)"
_ID_HASH_CH = (
    f"reinterpretAsUInt64(reverse(unhex(concat('0000', substring({_ID_TEXT}, {37 - HASH_HEX},"
    f" {HASH_HEX})))))"
)
_ID_HASH_PG = f"('x' || right(e.event_id::text, {HASH_HEX}))::bit({HASH_HEX * 4})::bigint"
_KEY_HASH_CH = (
    "reinterpretAsUInt64(reverse(unhex(concat('0', substring(hex(MD5(_row_id)), 1, 15)))))"
)
_KEY_HASH_PG = "('x' || substr(md5(sid), 1, 15))::bit(60)::bigint"
"""A row key's hash, the same on both sides: the first 60 bits of the MD5 of its text."""


class ClickHouseSide:
    """P's rows of `events` as one side of a bisecting diff (used only when totals differ)."""

    def __init__(
        self, client: Any, ddl: DdlOptions, partition_key: str, label: str = "clickhouse"
    ) -> None:
        self.client = client
        self.table = ddl.table(EVENTS_TABLE)
        self.key = partition_key
        self.label = label

    def _where(self, prefixes: Sequence[str] | None) -> tuple[str, dict[str, Any]]:
        where = "partition_key = {key:String}"
        params: dict[str, Any] = {"key": self.key}
        if prefixes:
            where += f" AND arrayExists(p -> startsWith({_ID_TEXT}, p), {{prefixes:Array(String)}})"
            params["prefixes"] = list(prefixes)
        return where, params

    def query(self, depth: int = 2) -> str:
        return (
            f"SELECT substring({_ID_TEXT}, 1, {depth}) AS bucket, count(),"
            f" sum(toUInt128({_ID_HASH_CH})) FROM {self.table}"
            f" WHERE partition_key = '{self.key}' GROUP BY bucket ORDER BY bucket"
        )

    def rows(self, query: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.client.query(query, parameters=params).result_rows]

    def summarize(self, depth: int, prefixes: Sequence[str] | None) -> dict[str, BucketSum]:
        where, params = self._where(prefixes)
        params["depth"] = depth
        rows = self.rows(
            f"SELECT substring({_ID_TEXT}, 1, {{depth:UInt8}}) AS b, count(),"
            f" toString(sum(toUInt128({_ID_HASH_CH}))) FROM {self.table} WHERE {where} GROUP BY b",
            params,
        )
        return {str(r[0]): BucketSum(int(r[1]), int(r[2])) for r in rows}

    def ids(self, prefixes: Sequence[str]) -> Counter[str]:
        where, params = self._where(prefixes)
        rows = self.rows(f"SELECT {_ID_TEXT} FROM {self.table} WHERE {where}", params)
        return Counter(str(r[0]) for r in rows)


@dataclass
class _StoreSide:
    """What one grouped scan of P in the event store says."""

    events: int = 0
    id_hash: int = 0
    newest: Any = None
    live: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Source table -> (live rows, sum of key hashes)."""


def _store_side(conn: psycopg.Connection[Any], spec: EstateSpec, key: str) -> _StoreSide:
    deletes = [a.event_type("delete") for a in spec.aggregates if a.events.delete.enabled]
    imports = [a.event_type("import") for a in spec.aggregates if a.events.import_.enabled]
    rows = conn.execute(
        "SELECT st, sum(n), sum(h), max(newest),"
        " count(*) FILTER (WHERE NOT deleted),"
        f" coalesce(sum({_KEY_HASH_PG}) FILTER (WHERE NOT deleted), 0)"
        " FROM (SELECT e.metadata ->> 'source_table' AS st, e.metadata ->> 'source_id' AS sid,"
        f" count(*) AS n, sum({_ID_HASH_PG}) AS h, max(e.occurred_at) AS newest,"
        " coalesce(max(e.position) FILTER (WHERE e.event_type = ANY(%(deletes)s)), 0)"
        " > coalesce(max(e.position) FILTER (WHERE e.event_type = ANY(%(imports)s)), 0)"
        " AS deleted"
        " FROM eventstore.events e WHERE e.partition_key = %(key)s"
        f" AND e.aggregate_type = ANY(%(types)s) AND {_NOT_PARKED}"
        " GROUP BY 1, 2) r GROUP BY st",
        {"key": key, "types": list(spec.topics), "deletes": deletes, "imports": imports},
    ).fetchall()
    side = _StoreSide()
    for st, n, h, newest, live, key_hash in rows:
        side.events += int(n)
        side.id_hash += int(h or 0)
        if newest is not None and (side.newest is None or newest > side.newest):
            side.newest = newest
        side.live[str(st)] = (int(live), int(key_hash))
    return side


def _open(client: Any) -> AbstractContextManager[Any]:
    """An open client as it is, or a client factory's context."""
    return nullcontext(client) if hasattr(client, "query") else client()


def _columns(client: Any, ddl: DdlOptions, table: str) -> list[tuple[str, str]]:
    return [
        (str(n), str(t))
        for n, t in client.query(
            "SELECT name, type FROM system.columns WHERE database = {db:String}"
            " AND table = {t:String} ORDER BY position",
            parameters={"db": ddl.database, "t": table},
        ).result_rows
    ]


def _view_mismatches(
    client: Any, ddl: DdlOptions, schema: Schema, key: str, skip: set[str]
) -> tuple[list[str], int]:
    """Each user target of P against its direct rebuild from P's events: (mismatches, checked)."""
    from strangler.analytics.ddl import render

    mismatches: list[str] = []
    checked = 0
    sources_filter = {
        "additional_table_filters": "{"
        + ", ".join(f"'{ddl.database}.{t}': 'partition_key = ''{key}'''" for t in schema.tables)
        + "}"
    }
    for derivation in (*schema.derived, *schema.views):
        if derivation.target in skip:
            continue
        columns = _columns(client, ddl, derivation.target)
        if not columns:
            mismatches.append(f"{derivation.target}: table missing")
            continue
        kept = [
            (i, n, t)
            for i, (n, t) in enumerate(columns, 1)
            if not t.startswith("AggregateFunction")
        ]
        target_hash = ", ".join(quote_identifier(n) for _i, n, _t in kept)
        direct_hash = ", ".join(f"CAST(tupleElement(t, {i}) AS {t})" for i, _n, t in kept)
        (target,) = client.query(
            f"SELECT count(), toString(sum(cityHash64({target_hash})))"
            f" FROM {ddl.table(derivation.target)} WHERE partition_key = {{key:String}}",
            parameters={"key": key},
        ).result_rows
        (direct,) = client.query(
            f"SELECT count(), toString(sum(cityHash64({direct_hash})))"
            f" FROM (SELECT tuple(*) AS t FROM ({render(derivation.select, ddl)}))",
            settings=sources_filter,
        ).result_rows
        checked += 1
        if tuple(target) != tuple(direct):
            mismatches.append(
                f"{derivation.target}: rows {target[0]} vs rebuild {direct[0]}"
                + (" (same count, different content)" if target[0] == direct[0] else "")
            )
    return mismatches, checked


@dataclass
class ClickHouseOutcomes:
    matches: CheckOutcome
    known_aggregates: CheckOutcome
    fresh: CheckOutcome
    views: CheckOutcome
    current_state: CheckOutcome

    @property
    def all(self) -> list[CheckOutcome]:
        return [self.matches, self.known_aggregates, self.fresh, self.views, self.current_state]


def check_clickhouse_partition(
    spec: EstateSpec,
    conn: psycopg.Connection[Any],
    client: Any,
    partition_key: str,
    *,
    ddl: DdlOptions | None = None,
    schema: Schema | None = None,
    max_freshness_lag_s: float = 3_600.0,
    start_depth: int = 2,
    leaf_rows: int = 5_000,
    sample: int = 10,
) -> list[CheckOutcome]:
    """Every ClickHouse check of P (`client`: an open client or a client factory)."""
    return check_clickhouse(
        spec,
        conn,
        client,
        partition_key,
        ddl=ddl,
        schema=schema,
        max_freshness_lag_s=max_freshness_lag_s,
        start_depth=start_depth,
        leaf_rows=leaf_rows,
        sample=sample,
    ).all


def check_clickhouse(
    spec: EstateSpec,
    conn: psycopg.Connection[Any],
    client: Any,
    partition_key: str,
    *,
    ddl: DdlOptions | None = None,
    schema: Schema | None = None,
    max_freshness_lag_s: float = 3_600.0,
    start_depth: int = 2,
    leaf_rows: int = 5_000,
    sample: int = 10,
) -> ClickHouseOutcomes:
    started = time.monotonic()
    key = partition_key_of(partition_key)
    ddl = ddl or DdlOptions()
    schema = schema or build_schema(spec)
    store = _store_side(conn, spec, key)
    conn.rollback()
    events = ddl.table(EVENTS_TABLE)
    states = {a.source.table: state_table(a) for a in spec.aggregates}
    declared = {(a.stream_type, t, a.source.table) for a in spec.aggregates for t in a.event_types}
    with _open(client) as ch:
        (total,) = ch.query(
            f"SELECT count(), toString(sum(toUInt128({_ID_HASH_CH}))), max(occurred_at),"
            " groupUniqArray((aggregate_type, event_type, source_table))"
            f" FROM {events} WHERE partition_key = {{key:String}}",
            parameters={"key": key},
        ).result_rows
        ch_count, ch_hash, ch_newest, kinds = int(total[0]), int(total[1] or 0), total[2], total[3]
        diff = None
        if (ch_count, ch_hash) != (store.events, store.id_hash):
            diff = bisect_diff(
                EventStoreSide(conn, key, list(spec.topics), published_only=True),
                ClickHouseSide(ch, ddl, key),
                start_depth=start_depth,
                leaf_rows=leaf_rows,
            )
            conn.rollback()
        state_rows: dict[str, tuple[int, int]] = {}
        for table, state in states.items():
            (row,) = ch.query(
                f"SELECT count(), toString(sum(toUInt128({_KEY_HASH_CH})))"
                f" FROM {ddl.table(state)} FINAL WHERE partition_key = {{key:String}}",
                parameters={"key": key},
            ).result_rows
            state_rows[table] = (int(row[0]), int(row[1] or 0))
        view_bad, views_checked = _view_mismatches(ch, ddl, schema, key, set(states.values()))
    reproduce = (
        f"SELECT count(*) FROM eventstore.events WHERE partition_key = '{key}'"
        f"  -- vs ClickHouse: SELECT count() FROM {events} WHERE partition_key = '{key}'"
    )
    matches = CheckOutcome(
        name="clickhouse.matches_event_store",
        system=SYSTEM,
        partition_key=key,
        passed=diff is None,
        description=(
            "P's event ids in the events table match the event store's (count and the sum of "
            "per-id hashes; a bisecting diff names the culprits when they differ)."
        ),
        target=ddl.database,
        left_label="event_store",
        right_label="clickhouse",
        left_count=store.events,
        right_count=ch_count,
        offending=diff.culprits(sample) if diff else [],
        reproduce=reproduce,
        details=(
            {
                "missing": len(diff.missing),
                "extra": len(diff.extra),
                "duplicated": len(diff.duplicated),
                "differing_buckets": diff.differing_buckets[:20],
            }
            if diff
            else {}
        ),
    )
    unknown = sorted({tuple(map(str, k)) for k in kinds} - declared)
    known = CheckOutcome(
        name="clickhouse.known_aggregates",
        system=SYSTEM,
        partition_key=key,
        passed=not unknown,
        description=(
            "Every row of P in the events table has an aggregate type, event type and source "
            "table the spec declares together."
        ),
        target=events.replace("`", ""),
        left_label="kinds",
        right_label="unknown",
        left_count=len(kinds),
        right_count=len(unknown),
        offending=[":".join(u) for u in unknown[:sample]],
        reproduce=(
            f"SELECT DISTINCT aggregate_type, event_type, source_table FROM {events}"
            f" WHERE partition_key = '{key}'"
        ),
    )
    fresh = freshness_outcome(
        "clickhouse.fresh",
        SYSTEM,
        key,
        ddl.database,
        store.newest,
        ch_newest if ch_count else None,
        max_freshness_lag_s,
        f"SELECT max(occurred_at) FROM {events} WHERE partition_key = '{key}'",
    )
    views = CheckOutcome(
        name="clickhouse.views_match_rebuild",
        system=SYSTEM,
        partition_key=key,
        passed=not view_bad,
        description=(
            "Every derived table and view target of the analytics folder holds, for P, what "
            "its SELECT gives over P's events (count and a hash of its rows)."
        ),
        target=ddl.database,
        left_label="checked",
        right_label="differing",
        left_count=views_checked,
        right_count=len(view_bad),
        offending=view_bad[:sample],
    )
    bad_states = [
        f"{states[t]}: {state_rows.get(t, (0, 0))[0]} live rows vs event store"
        f" {store.live.get(t, (0, 0))[0]}"
        for t in states
        if state_rows.get(t, (0, 0)) != store.live.get(t, (0, 0))
    ]
    current = CheckOutcome(
        name="clickhouse.current_state",
        system=SYSTEM,
        partition_key=key,
        passed=not bad_states,
        description=(
            "Per aggregate, the current-state table's rows of P (FINAL: latest version, deletes "
            "hidden) are the event store's live rows of P (count and a sum of key hashes)."
        ),
        target=ddl.database,
        left_label="event_store",
        right_label="clickhouse",
        left_count=sum(v[0] for v in store.live.values()),
        right_count=sum(v[0] for v in state_rows.values()),
        offending=bad_states[:sample],
        reproduce=(
            f"SELECT count() FROM {ddl.table(next(iter(states.values())))} FINAL"
            f" WHERE partition_key = '{key}'"
        ),
    )
    out = ClickHouseOutcomes(matches, known, fresh, views, current)
    for o in out.all:
        o.duration_s = time.monotonic() - started
    return out
