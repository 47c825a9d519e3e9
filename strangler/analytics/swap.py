"""Replace one partition of every analytics table atomically: staging twins + REPLACE PARTITION.

Partition P (a day 'YYYY-MM-DD', 'reference', or any other partition key) arrives as batches
of raw Kafka record values: no decoding in Python. ClickHouse extracts the typed columns from
the JSON envelopes, keeps P's records only and writes them into the events twin
(`events__stage_<P>`), then keeps one row per event id (Kafka may hold an event twice). With
the embedded engine a batch goes to ClickHouse as an Arrow stream file that the extracting
INSERT reads directly (`file()`), so the raw values are never stored; a server gets the batch
over the wire into a landing twin (`events__land_<P>`) and extracts from it once every record
is there. The current-state tables, the derived tables and the
materialized-view targets are then rebuilt for P from the staged events (partition operations
do not fire views), each into its own twin, and each live table takes P with one `ALTER TABLE
... REPLACE PARTITION ... FROM twin`: a metadata operation that readers see entirely before or
entirely after. A staged table without rows for P drops P instead (ClickHouse refuses to
replace from an empty source). Twins are per partition, so different partitions load in
parallel without touching each other; the same partition loaded twice at once is not supported
(the asset pool prevents it).

The swaps of different tables are separate statements: for a few milliseconds `events` may
hold the new P while a derived table still holds the old one. Each table on its own is never
half-written or doubled.
"""

from __future__ import annotations

import os
import re
import struct
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.ipc

from strangler.analytics.ddl import (
    DdlOptions,
    Schema,
    default_schema,
    derivation_sql,
    staging_table_sql,
)

EVENTS_TABLE = "events"
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")

LANDING_SCHEMA = pa.schema(
    [
        ("value", pa.binary()),
        ("kafka_topic", pa.string()),
        ("kafka_partition", pa.int32()),
        ("kafka_offset", pa.int64()),
    ]
)
"""What the sink hands ClickHouse per record: the raw value and where it was read."""

_ENVELOPE = (
    "Tuple(event_id Nullable(UUID), event_type String, schema_version UInt16,"
    " aggregate_type String, aggregate_id String, aggregate_version UInt32,"
    " occurred_at String, partition_day String, position Int64,"
    " metadata Tuple(source_table String, source_id String), payload String)"
)
"""The record value's JSON envelope (strangler.migration.kafka_records), parsed once per row
(an object extracted as String is its JSON text). `partition_day` carries the partition key
(the relay sets it to the key, days or not)."""


_LANDING_STRUCTURE = "value String, kafka_topic String, kafka_partition Int32, kafka_offset Int64"
"""LANDING_SCHEMA as ClickHouse reads it from an Arrow stream file."""


def reads_local_files(client: object) -> bool:
    """True for the embedded engine (chdb): it runs in this process and reads this machine's
    files, so a batch can reach it as a file instead of an insert."""
    return str(getattr(client, "uri", "")).startswith("chdb:")


class SwapClient(Protocol):
    def command(self, cmd: str, parameters: Any = None) -> Any: ...

    def query(self, query: str, parameters: Any = None) -> Any: ...

    def insert_arrow(self, table: str, arrow_table: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class SwapStats:
    rows: Mapping[str, int]
    """Rows of P per table after the swap."""
    duplicates_dropped: int
    landed: int = 0
    """Records landed (every record of the read ranges, P's and others')."""
    other_partitions: int = 0
    """Landed records of other partitions (a range may hold a late edit of another day)."""


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def partition_key_of(key: str | date) -> str:
    """A validated partition key (a date becomes its ISO day)."""
    text = key.isoformat() if isinstance(key, date) else key
    if not isinstance(text, str) or not _KEY.match(text):
        raise ValueError(f"invalid partition key: {key!r}")
    return text


def _siphash128(data: bytes) -> tuple[int, int]:
    """ClickHouse's (non-reference) SipHash-2-4 128, as its partition ids use it."""
    mask = (1 << 64) - 1

    def rotl(x: int, b: int) -> int:
        return ((x << b) | (x >> (64 - b))) & mask

    v = [0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261, 0x7465646279746573]

    def rounds(n: int) -> None:
        for _ in range(n):
            v[0] = (v[0] + v[1]) & mask
            v[1] = rotl(v[1], 13) ^ v[0]
            v[0] = rotl(v[0], 32)
            v[2] = (v[2] + v[3]) & mask
            v[3] = rotl(v[3], 16) ^ v[2]
            v[0] = (v[0] + v[3]) & mask
            v[3] = rotl(v[3], 21) ^ v[0]
            v[2] = (v[2] + v[1]) & mask
            v[1] = rotl(v[1], 17) ^ v[2]
            v[2] = rotl(v[2], 32)

    full = len(data) // 8 * 8
    words = [struct.unpack_from("<Q", data, i)[0] for i in range(0, full, 8)]
    tail = data[full:] + b"\0" * (7 - (len(data) - full)) + bytes([len(data) & 0xFF])
    words.append(struct.unpack("<Q", tail)[0])
    for m in words:
        v[3] ^= m
        rounds(2)
        v[0] ^= m
    v[2] ^= 0xFF
    rounds(4)
    return v[0] ^ v[1], v[2] ^ v[3]


def partition_id(key: str | date) -> str:
    """ClickHouse's partition id of `PARTITION BY partition_key` (a String) for a key: the hex
    of the SipHash of the value (what `partitionId(key)` returns; tested against the engine)."""
    value = partition_key_of(key).encode()
    low, high = _siphash128(bytes([16]) + struct.pack("<Q", len(value)) + value)
    return struct.pack("<QQ", low, high).hex()


def staging_suffix(key: str | date) -> str:
    """`2026-01-02` -> `20260102`; other keys as they are (validated)."""
    return partition_key_of(key).replace("-", "")


class PartitionSwap:
    """Land one partition's records, then swap the partition into every table of the schema."""

    def __init__(self, key: str | date, options: DdlOptions, schema: Schema | None = None) -> None:
        self.key = partition_key_of(key)
        self.options = options
        self.schema = schema or default_schema()
        self.pid = partition_id(self.key)
        suffix = staging_suffix(self.key)
        self.staging: dict[str, str] = {
            t: f"{t}__stage_{suffix}" for t in self.schema.swapped_tables
        }
        self.landing = f"{EVENTS_TABLE}__land_{suffix}"
        if EVENTS_TABLE not in self.schema.loaded_tables:
            raise ValueError("the schema has no loaded `events` table")
        self.direct = False
        """Batches are extracted straight from Arrow files (no landing twin); set by prepare."""
        self._landed = 0

    def _staged(self, table: str) -> str:
        return self.options.table(self.staging[table])

    def prepare(self, client: SwapClient) -> None:
        """Fresh, empty twins (left-overs of a killed run of P are dropped first)."""
        self.discard(client, only_present=True)
        o = self.options
        self.direct = reads_local_files(client)
        self._landed = 0
        if not self.direct:
            client.command(
                f"CREATE TABLE {o.table(self.landing)}{o.on_cluster} (value String,"
                " kafka_topic LowCardinality(String), kafka_partition Int32, kafka_offset Int64)"
                f" ENGINE = {o.engine('MergeTree')} ORDER BY tuple()"
            )
        for table, twin in self.staging.items():
            for stmt in staging_table_sql(self.schema, table, twin, self.options):
                client.command(stmt)

    def land(self, client: SwapClient, records: pa.Table) -> None:
        """Hand ClickHouse a batch of raw records (LANDING_SCHEMA): extracted into the events
        twin at once (embedded engine) or appended to the landing twin (server)."""
        if not self.direct:
            client.insert_arrow(self.options.table(self.landing), records)
            return
        fd, path = tempfile.mkstemp(prefix=f"strangler-{self.landing}-", suffix=".arrows")
        try:
            with os.fdopen(fd, "wb") as sink, pa.ipc.new_stream(sink, records.schema) as writer:
                writer.write_table(records)
            self._extract(client, f"file({_quoted(path)}, 'ArrowStream', '{_LANDING_STRUCTURE}')")
        finally:
            os.unlink(path)
        self._landed += records.num_rows

    def _extract(self, client: SwapClient, source: str) -> None:
        """Typed events of P from raw records (`source`: a table or table function)."""
        client.command(
            f"INSERT INTO {self._staged(EVENTS_TABLE)} (partition_key, occurred_at, event_id,"
            " event_type, schema_version, aggregate_type, aggregate_id, aggregate_version,"
            " position, source_table, source_id, payload, kafka_topic, kafka_partition,"
            " kafka_offset)"
            " SELECT e.partition_day, parseDateTime64BestEffort(e.occurred_at, 6, 'UTC'),"
            " assumeNotNull(e.event_id), e.event_type, e.schema_version, e.aggregate_type,"
            " e.aggregate_id, e.aggregate_version, e.position, e.metadata.source_table,"
            " e.metadata.source_id, e.payload, kafka_topic,"
            " kafka_partition, kafka_offset"
            f" FROM (SELECT JSONExtract(value, '{_ENVELOPE}') AS e, kafka_topic,"
            f" kafka_partition, kafka_offset FROM {source})"
            f" WHERE {self._kept_partitions()} AND e.event_id IS NOT NULL",
            parameters=self._kept_parameters(),
        )

    def _kept_partitions(self) -> str:
        """The extraction's filter on `e.partition_day`: the records of P only."""
        return "e.partition_day = {key:String}"

    def _kept_parameters(self) -> dict[str, Any]:
        return {"key": self.key}

    def _count(self, client: SwapClient, table: str) -> int:
        result = client.query(
            f"SELECT count() FROM {table} WHERE partition_key = {{key:String}}",
            parameters={"key": self.key},
        )
        return int(result.result_rows[0][0])

    def _stage_events(self, client: SwapClient) -> tuple[int, int, int]:
        """Landed records -> typed events of P, one per event id; (landed, other, duplicates).

        Each envelope is parsed once. Duplicates (a republished partition) are rare, so they
        are looked for in the typed twin (a columnar count) and only then removed, keeping the
        copy read first (lowest offset)."""
        staged = self._staged(EVENTS_TABLE)
        if self.direct:
            landed = self._landed
        else:
            landing = self.options.table(self.landing)
            ((landed,),) = client.query(f"SELECT count() FROM {landing}").result_rows
            self._extract(client, landing)
        total, unique = client.query(
            f"SELECT count(), uniqExact(event_id) FROM {staged}"
        ).result_rows[0]
        duplicates = int(total) - int(unique)
        if duplicates:
            self._dedupe(client)
        return int(landed), int(landed) - int(total), duplicates

    def _dedupe(self, client: SwapClient) -> None:
        """One row per event id in the events twin (through a second twin and a replace)."""
        o = self.options
        dedup_name = f"{EVENTS_TABLE}__dedup_{staging_suffix(self.key)}"
        dedup = o.table(dedup_name)
        staged = self._staged(EVENTS_TABLE)
        client.command(f"DROP TABLE IF EXISTS {dedup}{o.on_cluster} SYNC")
        for stmt in staging_table_sql(self.schema, EVENTS_TABLE, dedup_name, o):
            client.command(stmt)
        try:
            client.command(
                f"INSERT INTO {dedup} SELECT * FROM {staged}"
                " ORDER BY event_id, kafka_offset LIMIT 1 BY event_id"
            )
            client.command(f"ALTER TABLE {staged} REPLACE PARTITION ID '{self.pid}' FROM {dedup}")
        finally:
            client.command(f"DROP TABLE IF EXISTS {dedup}{o.on_cluster} SYNC")

    def finish(self, client: SwapClient) -> SwapStats:
        """Stage P's events, rebuild every derived table and view target for P, swap every
        table, drop the twins."""
        landed, other, duplicates = self._stage_events(client)
        for derivation in (*self.schema.derived, *self.schema.views):
            client.command(derivation_sql(derivation, self.options, self.staging))
        counted = client.query(
            " UNION ALL ".join(
                f"SELECT {i} AS t, count() FROM {self._staged(table)}"
                " WHERE partition_key = {key:String}"
                for i, table in enumerate(self.schema.swapped_tables)
            ),
            parameters={"key": self.key},
        ).result_rows
        by_index = {int(i): int(n) for i, n in counted}
        rows = {t: by_index.get(i, 0) for i, t in enumerate(self.schema.swapped_tables)}
        for table in self.schema.swapped_tables:
            staged = self._staged(table)
            live = self.options.table(table)
            if rows[table]:
                client.command(
                    f"ALTER TABLE {live} REPLACE PARTITION ID '{self.pid}' FROM {staged}"
                )
            else:
                client.command(f"ALTER TABLE {live} DROP PARTITION ID '{self.pid}'")
        self.discard(client)
        return SwapStats(
            rows=rows, duplicates_dropped=duplicates, landed=landed, other_partitions=other
        )

    def discard(self, client: SwapClient, *, only_present: bool = False) -> None:
        """Drop the twins of P (`only_present`: look first, usually there are none)."""
        o = self.options
        twins = [self.landing, *self.staging.values()]
        if only_present:
            present = {
                str(r[0])
                for r in client.query(
                    "SELECT name FROM system.tables WHERE database = {db:String}"
                    " AND has({names:Array(String)}, name)",
                    parameters={"db": o.database, "names": twins},
                ).result_rows
            }
            twins = [t for t in twins if t in present]
        if not twins:
            return
        if o.cluster:
            for twin in twins:
                client.command(f"DROP TABLE IF EXISTS {o.table(twin)}{o.on_cluster} SYNC")
            return
        client.command(f"DROP TABLE IF EXISTS {', '.join(o.table(t) for t in twins)} SYNC")


DaySwap = PartitionSwap
"""The former name (a partition was always a day)."""


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
    client: SwapClient, options: DdlOptions, key: str | date, tables: tuple[str, ...]
) -> dict[str, PartitionStorage]:
    """Rows and bytes of P per table, from the active parts."""
    result = client.query(
        "SELECT table, sum(rows), sum(bytes_on_disk), sum(data_compressed_bytes),"
        " sum(data_uncompressed_bytes) FROM system.parts"
        " WHERE active AND database = {db:String} AND partition_id = {pid:String}"
        " AND has({tables:Array(String)}, table) GROUP BY table",
        parameters={"db": options.database, "pid": partition_id(key), "tables": list(tables)},
    )
    out = {t: PartitionStorage(0, 0, 0, 0) for t in tables}
    for table, rows, on_disk, compressed, uncompressed in result.result_rows:
        out[str(table)] = PartitionStorage(
            int(rows), int(on_disk), int(compressed), int(uncompressed)
        )
    return out
