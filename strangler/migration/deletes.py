"""What the event store already knows of a partition's rows: stored states and vanished rows.

Both read the estate's database; only `gone_rows` also asks the monolith (read-only) which
of the stored rows still exist there.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from strangler.migration import source
from strangler.spec.models import Aggregate


def by_source_ids(aggregate: Aggregate, ids: Sequence[str]) -> tuple[str, tuple[Any, ...]]:
    """SQL over `eventstore.events` selecting the events of these source rows, and its
    parameters. The row id is the stream id unless the rows are folded into a parent's
    stream, so the (indexed) stream id narrows the search whenever it can."""
    where = (
        "aggregate_type = %s AND metadata ->> 'source_table' = %s"
        " AND metadata ->> 'source_id' = ANY(%s)"
    )
    params: tuple[Any, ...] = (aggregate.stream_type, aggregate.source.table, list(ids))
    if aggregate.fold_into:
        return where, params
    return where + " AND aggregate_id = ANY(%s)", (*params, list(ids))


def stored_states(
    conn: psycopg.Connection[Any], aggregate: Aggregate, ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Row id -> the state its import and change events carry (rows never migrated: absent)."""
    if not ids:
        return {}
    kinds = [aggregate.event_type("import"), aggregate.event_type("change")]
    where, params = by_source_ids(aggregate, ids)
    rows = conn.execute(
        "SELECT metadata ->> 'source_id', event_type, payload FROM eventstore.events"
        f" WHERE {where} AND event_type = ANY(%s) ORDER BY aggregate_id, aggregate_version",
        (*params, kinds),
    ).fetchall()
    states: dict[str, dict[str, Any]] = {}
    for row_id, _type, payload in rows:
        states.setdefault(row_id, {}).update(payload)
    return states


def gone_rows(
    estate: psycopg.Connection[Any],
    monolith: psycopg.Connection[Any],
    aggregate: Aggregate,
    partition_key: str,
    batch_size: int,
) -> Iterator[list[tuple[str, str]]]:
    """Batches of (row id, stream id) migrated in this partition, not deleted, and gone now.

    The stored rows stream through a server-side cursor held across the caller's commits
    (memory stays flat however many rows the partition holds), in the byte order of (row id,
    stream id): the order delete events are appended in. Grouping, not an anti-join: right
    after a first load the planner's statistics know nothing of the new events, and a
    correlated anti-join then degenerates into a scan per row.
    """
    query = (
        "SELECT source_id, aggregate_id FROM ("
        " SELECT source_id, aggregate_id, bool_or(deleted) OVER (PARTITION BY source_id) AS gone"
        " FROM (SELECT metadata ->> 'source_id' AS source_id, aggregate_id,"
        "  bool_or(event_type = %s) AS deleted"
        "  FROM eventstore.events WHERE partition_key = %s AND aggregate_type = %s"
        "  AND metadata ->> 'source_table' = %s GROUP BY 1, 2) per_stream) s"
        ' WHERE NOT gone ORDER BY source_id COLLATE "C", aggregate_id COLLATE "C"'
    )
    params = (
        aggregate.event_type("delete"),
        partition_key,
        aggregate.stream_type,
        aggregate.source.table,
    )
    types: list[str] | None = None
    with estate.cursor(name=f"strangler_gone_{aggregate.source.table}", withhold=True) as cur:
        cur.itersize = batch_size
        cur.execute(query, params)
        estate.commit()
        while chunk := cur.fetchmany(batch_size):
            if types is None:
                types = source.key_types(monolith, aggregate)
            ids = [str(row_id) for row_id, _ in chunk]
            present = source.existing_keys(monolith, aggregate, types, ids)
            gone = [(str(r), str(s)) for r, s in chunk if str(r) not in present]
            if gone:
                yield gone
