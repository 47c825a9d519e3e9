"""Per aggregate, a current-state table: the latest version of each monolith row, typed.

The table is named after the aggregate (`Order` -> `order_state`). It holds one row per source
row of the aggregate in each partition (every event of a row lives in the row's partition, so
a partition's current state is computed from that partition's events alone):

- `partition_key`, `_row_id` (the source row's key text), `_version` (position of the row's
  latest event), `_is_deleted` (1 when the row has a delete event after its import event: a
  change event recorded with a soft delete does not bring the row back), `_updated_at` (the
  latest event's time);
- one column per payload field of the aggregate's import, change and named events, holding the
  field's value in the row's latest event that carries the field.

Engine: ReplacingMergeTree(_version, _is_deleted) ORDER BY _row_id, PARTITION BY
partition_key. Read it with FINAL: FINAL keeps the newest version of a row and hides it when
that version is a delete, so a current-state query never shows a deleted or older row. The
partition swap writes exactly one row per row id, so the table holds no older versions; a
deleted row stays as its tombstone (`_is_deleted = 1`, visible without FINAL).

Column types come from ONE mapping of the source column's Postgres type (the event store's
drift baseline, `migration_state.source_columns`), overridable per column with the spec's
`columns: {c: {clickhouse: <type>}}`. A `{sql: ...}` field, or a column whose type is not known
yet, is a String holding the field's JSON text. Columns are Nullable (an event may not carry a
field, or carry null), arrays are Array(Nullable(element)).

| Postgres | JSON in the event | ClickHouse column |
| --- | --- | --- |
| smallint (int2) | number | Nullable(Int16) |
| integer (int4) | number | Nullable(Int32) |
| bigint (int8) | number | Nullable(Int64) |
| oid | number | Nullable(UInt32) |
| real (float4) | number | Nullable(Float32) |
| double precision (float8) | number | Nullable(Float64) |
| numeric | string `"12.50"` | Nullable(Decimal(38, 10)) |
| money | string | Nullable(Decimal(18, 2)) |
| text, varchar, char (bpchar), citext, name | string | Nullable(String) |
| inet, cidr, macaddr | string | Nullable(String) |
| enum | string | Nullable(String) |
| boolean (bool) | true / false | Nullable(Bool) |
| timestamptz, timestamp | ISO-8601 string, UTC | Nullable(DateTime64(6, 'UTC')) |
| date | `2026-11-20` | Nullable(Date32) |
| time, timetz | `10:00:00` | Nullable(String) |
| uuid | string | Nullable(UUID) |
| json, jsonb | the JSON value | Nullable(String) (the JSON text) |
| bytea | base64 string | Nullable(String) (the base64 text) |
| interval | ISO-8601 duration | Nullable(String) |
| array of any type above (`_int4`, ...) | JSON array | Array(Nullable(element type)) |
| anything else, `{sql:}` fields, unknown | any | Nullable(String) (the JSON text) |

A column with `as:` travels as that JSON kind and maps by it: integer -> Int64, number ->
Float64, decimal -> Decimal(38, 10), string/time/interval/bytes -> String, boolean -> Bool,
timestamp -> DateTime64(6, 'UTC'), date -> Date32, uuid -> UUID, json/array -> String (JSON text).
Values that do not convert to the column's type become NULL (the event store validated the
payloads already; this only guards the columnar types).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from strangler.analytics.ddl import DdlError, validate_identifier
from strangler.spec.models import Aggregate, JsonKind, SqlField

STATE_SUFFIX = "_state"
EVENTS_TABLE = "events"
META_COLUMNS = ("partition_key", "_row_id", "_version", "_is_deleted", "_updated_at")

PG_TO_CLICKHOUSE: dict[str, str] = {
    "int2": "Int16",
    "int4": "Int32",
    "int8": "Int64",
    "oid": "UInt32",
    "float4": "Float32",
    "float8": "Float64",
    "numeric": "Decimal(38, 10)",
    "money": "Decimal(18, 2)",
    **dict.fromkeys(
        ("text", "varchar", "bpchar", "char", "citext", "name", "inet", "cidr", "macaddr"),
        "String",
    ),
    "bool": "Bool",
    "timestamptz": "DateTime64(6, 'UTC')",
    "timestamp": "DateTime64(6, 'UTC')",
    "date": "Date32",
    "time": "String",
    "timetz": "String",
    "uuid": "UUID",
    "json": "JSON_TEXT",
    "jsonb": "JSON_TEXT",
    "bytea": "String",
    "interval": "String",
}
"""Postgres `typname` -> ClickHouse type (before Nullable); JSON_TEXT: String of the raw JSON."""

KIND_TO_CLICKHOUSE: dict[JsonKind, str] = {
    "integer": "Int64",
    "number": "Float64",
    "decimal": "Decimal(38, 10)",
    "string": "String",
    "time": "String",
    "interval": "String",
    "bytes": "String",
    "boolean": "Bool",
    "timestamp": "DateTime64(6, 'UTC')",
    "date": "Date32",
    "uuid": "UUID",
    "json": "JSON_TEXT",
    "array": "JSON_TEXT",
}
"""JSON kind of a column with `as:` -> ClickHouse type."""

JSON_TEXT = "JSON_TEXT"
_UNWRAPPABLE = re.compile(r"^(Array|Map|Tuple|Nullable|LowCardinality|JSON|Variant|Dynamic)\b")


def state_table(aggregate: Aggregate) -> str:
    """`OrderLine` -> `order_line_state`."""
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", aggregate.name).lower()
    return validate_identifier(f"{snake}{STATE_SUFFIX}", "table name")


def base_type(pg_type: str | None, kind: JsonKind | None = None) -> str:
    """The ClickHouse type of a value (before Nullable), from the mapping tables above."""
    if kind is not None:
        return KIND_TO_CLICKHOUSE[kind]
    if pg_type is None:
        return JSON_TEXT
    if pg_type.startswith("_"):
        element = PG_TO_CLICKHOUSE.get(pg_type[1:])
        if element is None or element == JSON_TEXT:
            return JSON_TEXT
        return f"Array(Nullable({element}))"
    return PG_TO_CLICKHOUSE.get(pg_type, JSON_TEXT)


def column_type(base: str) -> str:
    """The column's declared type: Nullable where ClickHouse allows it."""
    if base == JSON_TEXT:
        return "Nullable(String)"
    if base.startswith("LowCardinality("):
        inner = base[len("LowCardinality(") : -1]
        return base if inner.startswith("Nullable(") else f"LowCardinality(Nullable({inner}))"
    return base if _UNWRAPPABLE.match(base) else f"Nullable({base})"


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def convert_sql(raw: str, base: str) -> str:
    """ClickHouse expression converting `raw` (a JSON value's text, '' when absent) to `base`."""
    if base == JSON_TEXT:
        return f"if({raw} IN ('', 'null'), NULL, {raw})"
    if base.startswith("Array("):
        return f"JSONExtract({raw}, {_quoted(base)})"
    text = (
        f"multiIf({raw} IN ('', 'null'), NULL, JSONType({raw}) = 'String',"
        f" JSONExtractString({raw}), {raw})"
    )
    plain = (
        base.removeprefix("LowCardinality(").removesuffix(")")
        if base.startswith("LowCardinality(")
        else base
    )
    if plain == "String":
        return text
    if plain.startswith("DateTime"):
        return (
            f"accurateCastOrNull(parseDateTime64BestEffortOrNull({text}, 6, 'UTC'),"
            f" {_quoted(plain)})"
        )
    return f"accurateCastOrNull({text}, {_quoted(plain)})"


def extract_sql(field: str, base: str, source: str = "payload") -> str:
    """ClickHouse expression of the field's value in the JSON text `source`, as `base`."""
    return convert_sql(f"JSONExtractRaw({source}, {_quoted(field)})", base)


def state_fields(aggregate: Aggregate, columns: Mapping[str, str]) -> dict[str, str]:
    """Payload field -> ClickHouse base type, for the import, change and named events.

    `columns` is the source table's column -> Postgres type (empty when not known yet).
    """
    excluded = set(aggregate.source.exclude)
    rules = aggregate.columns
    fields: dict[str, str] = {}

    def typed(column: str) -> str:
        rule = rules.get(column)
        if rule is not None and rule.clickhouse:
            return rule.clickhouse
        return base_type(columns.get(column), rule.as_ if rule else None)

    def generic() -> None:
        for column in columns:
            if column not in excluded:
                fields.setdefault(column, typed(column))

    events = aggregate.events
    declared = []
    if events.import_.enabled:
        declared.append(events.import_.fields)
    if events.change.enabled:
        declared.append(events.change.fields)
    declared += [n.fields for n in events.named]
    for spec_fields in declared:
        if spec_fields is None:
            generic()
            continue
        for name, source in spec_fields.items():
            if name in fields:
                continue
            fields[name] = JSON_TEXT if isinstance(source, SqlField) else typed(source)
    for name in fields:
        validate_identifier(name, "payload field")
        if name in META_COLUMNS:
            raise DdlError(
                f"{aggregate.name}: payload field {name!r} collides with a current-state column"
            )
    return fields


def state_derivation(aggregate: Aggregate, columns: Mapping[str, str]) -> tuple[str, str, str]:
    """(table, CREATE template, SELECT template over events) of the aggregate's current state."""
    table = state_table(aggregate)
    fields = state_fields(aggregate, columns)
    column_lines = [
        "    partition_key  String",
        "    _row_id        String",
        "    _version       UInt64",
        "    _is_deleted    UInt8",
        "    _updated_at    DateTime64(6, 'UTC')",
        *(f"    `{name}`  {column_type(base)}" for name, base in fields.items()),
    ]
    create = (
        f"CREATE TABLE IF NOT EXISTS {{{{db}}}}.`{table}`{{{{on_cluster}}}}\n(\n"
        + ",\n".join(column_lines)
        + "\n)\nENGINE = {{engine ReplacingMergeTree(_version, _is_deleted)}}\n"
        "PARTITION BY partition_key\nORDER BY _row_id"
    )
    delete_type = aggregate.event_type("delete") if aggregate.events.delete.enabled else None
    types = [t for t in aggregate.event_types if t != delete_type]
    live = "event_type IN (" + ", ".join(_quoted(t) for t in types) + ")" if types else "0"
    deleted = f"event_type = {_quoted(delete_type)}" if delete_type else "0"
    import_type = aggregate.event_type("import") if aggregate.events.import_.enabled else None
    imported = f"event_type = {_quoted(import_type)}" if import_type else "0"
    all_types = ", ".join(_quoted(t) for t in aggregate.event_types)
    # Each payload is parsed once (into a map of raw JSON values); per field the raw value of
    # the latest event carrying it is kept, and only those are converted to typed values.
    latest = [
        f"argMaxIf(kv[{_quoted(name)}], position, {live} AND mapContains(kv, {_quoted(name)}))"
        f" AS `_p{i}`"
        for i, name in enumerate(fields)
    ]
    inner = (
        "SELECT\n        partition_key,\n        source_id AS _row_id,\n"
        "        toUInt64(max(position)) AS _version,\n"
        f"        toUInt8(maxIf(position, {deleted}) > maxIf(position, {imported})) AS _is_deleted,\n"
        "        max(occurred_at) AS _updated_at"
        + "".join(f",\n        {expr}" for expr in latest)
        + "\n    FROM (SELECT partition_key, source_id, position, event_type, occurred_at,"
        " CAST(JSONExtractKeysAndValuesRaw(payload), 'Map(String, String)') AS kv"
        f"\n        FROM {{{{db}}}}.`{EVENTS_TABLE}`\n        WHERE event_type IN ({all_types})"
        f" AND source_table = {_quoted(aggregate.source.table)})"
        "\n    GROUP BY partition_key, source_id"
    )
    outer = [
        "partition_key",
        "_row_id",
        "_version",
        "_is_deleted",
        "_updated_at",
        *(
            f"{convert_sql(f'`_p{i}`', base)} AS `{name}`"
            for i, (name, base) in enumerate(fields.items())
        ),
    ]
    select = "SELECT\n    " + ",\n    ".join(outer) + f"\nFROM (\n    {inner}\n)"
    return table, create, select
