"""Replace one day of every analytics table atomically: staging twins + REPLACE PARTITION.

Day D is written into per-day staging twins (`<table>__stage_YYYYMMDD`), never into the live
tables. When the staged events are complete, the derived tables and the materialized-view
targets are rebuilt for D from the staged rows (partition operations do not fire views), each
into its own twin, and each live table then takes D with one `ALTER TABLE ... REPLACE
PARTITION ... FROM twin`: a metadata operation that readers see entirely before or entirely
after. A staged table without rows for D drops D instead (newer ClickHouse refuses to replace
from an empty source). Twins are per day, so different days load in parallel without touching
each other; the same day loaded twice at once is not supported (the asset pool prevents it).

The swaps of different tables are separate statements: for a few milliseconds
analytics.events may hold the new D while an aggregate still holds the old one. Each table on
its own is never half-written or doubled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

import pyarrow as pa

from strangler.analytics.ddl import (
    DdlOptions,
    Schema,
    default_schema,
    derivation_sql,
    staging_table_sql,
)

EVENTS_TABLE = "events"


class SwapClient(Protocol):
    def command(self, cmd: str, parameters: Any = None) -> Any: ...

    def query(self, query: str, parameters: Any = None) -> Any: ...

    def insert_arrow(self, table: str, arrow_table: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class SwapStats:
    rows: Mapping[str, int]
    """Rows of D per table after the swap."""
    duplicates_dropped: int


def partition_id(day: date) -> str:
    """The partition id of a `PARTITION BY <Date>` key: YYYYMMDD, built from a date, never text."""
    if not isinstance(day, date):
        raise TypeError(f"expected a date, got {type(day).__name__}")
    return day.strftime("%Y%m%d")


class DaySwap:
    """Stage one day, then swap it into every table of the schema."""

    def __init__(self, day: date, options: DdlOptions, schema: Schema | None = None) -> None:
        self.day = day
        self.options = options
        self.schema = schema or default_schema()
        self.pid = partition_id(day)
        self.staging: dict[str, str] = {
            t: f"{t}__stage_{self.pid}" for t in self.schema.swapped_tables
        }
        if EVENTS_TABLE not in self.schema.loaded_tables:
            raise ValueError("the schema has no loaded `events` table")

    def _staged(self, table: str) -> str:
        return self.options.table(self.staging[table])

    def prepare(self, client: SwapClient) -> None:
        """Fresh, empty twins (left-overs of a killed run of D are dropped first)."""
        self.discard(client)
        for table, twin in self.staging.items():
            for stmt in staging_table_sql(self.schema, table, twin, self.options):
                client.command(stmt)

    def insert(self, client: SwapClient, rows: pa.Table, table: str = EVENTS_TABLE) -> None:
        """Append a batch of D's rows to a loaded table's twin."""
        if table not in self.schema.loaded_tables:
            raise ValueError(f"{table} is derived; it is rebuilt during the swap")
        client.insert_arrow(self._staged(table), rows)

    def _count(self, client: SwapClient, table: str) -> int:
        result = client.query(
            f"SELECT count() FROM {table} WHERE partition_day = {{day:Date}}",
            parameters={"day": self.day},
        )
        return int(result.result_rows[0][0])

    def _dedupe_events(self, client: SwapClient) -> int:
        """Kafka may hold an event twice (a re-published day); keep one row per event id."""
        staged = self._staged(EVENTS_TABLE)
        total, unique = client.query(
            f"SELECT count(), uniqExact(event_id) FROM {staged}"
        ).result_rows[0]
        duplicates = int(total) - int(unique)
        if duplicates == 0:
            return 0
        dedup_name = f"{EVENTS_TABLE}__dedup_{self.pid}"
        dedup = self.options.table(dedup_name)
        client.command(f"DROP TABLE IF EXISTS {dedup}{self.options.on_cluster} SYNC")
        for stmt in staging_table_sql(self.schema, EVENTS_TABLE, dedup_name, self.options):
            client.command(stmt)
        try:
            client.command(
                f"INSERT INTO {dedup} SELECT * FROM {staged}"
                " ORDER BY event_id, kafka_offset LIMIT 1 BY event_id"
            )
            client.command(f"ALTER TABLE {staged} REPLACE PARTITION ID '{self.pid}' FROM {dedup}")
        finally:
            client.command(f"DROP TABLE IF EXISTS {dedup}{self.options.on_cluster} SYNC")
        return duplicates

    def finish(self, client: SwapClient) -> SwapStats:
        """Dedupe, rebuild derived tables and view targets for D, swap every table, drop twins."""
        duplicates = self._dedupe_events(client)
        for derivation in (*self.schema.derived, *self.schema.views):
            client.command(derivation_sql(derivation, self.options, self.staging))
        rows: dict[str, int] = {}
        for table in self.schema.swapped_tables:
            staged = self._staged(table)
            rows[table] = self._count(client, staged)
            live = self.options.table(table)
            if rows[table]:
                client.command(
                    f"ALTER TABLE {live} REPLACE PARTITION ID '{self.pid}' FROM {staged}"
                )
            else:
                client.command(f"ALTER TABLE {live} DROP PARTITION ID '{self.pid}'")
        self.discard(client)
        return SwapStats(rows=rows, duplicates_dropped=duplicates)

    def discard(self, client: SwapClient) -> None:
        for twin in self.staging.values():
            client.command(
                f"DROP TABLE IF EXISTS {self.options.table(twin)}{self.options.on_cluster} SYNC"
            )


@dataclass(frozen=True, slots=True)
class PartitionStorage:
    rows: int
    bytes_on_disk: int
    compressed_bytes: int
    uncompressed_bytes: int

    @property
    def compression_ratio(self) -> float:
        return self.uncompressed_bytes / self.compressed_bytes if self.compressed_bytes else 0.0


def partition_storage(
    client: SwapClient, options: DdlOptions, day: date, tables: tuple[str, ...]
) -> dict[str, PartitionStorage]:
    """Rows and bytes of D per table, from the active parts."""
    result = client.query(
        "SELECT table, sum(rows), sum(bytes_on_disk), sum(data_compressed_bytes),"
        " sum(data_uncompressed_bytes) FROM system.parts"
        " WHERE active AND database = {db:String} AND partition_id = {pid:String}"
        " AND has({tables:Array(String)}, table) GROUP BY table",
        parameters={"db": options.database, "pid": partition_id(day), "tables": list(tables)},
    )
    out = {t: PartitionStorage(0, 0, 0, 0) for t in tables}
    for table, rows, on_disk, compressed, uncompressed in result.result_rows:
        out[str(table)] = PartitionStorage(
            int(rows), int(on_disk), int(compressed), int(uncompressed)
        )
    return out
