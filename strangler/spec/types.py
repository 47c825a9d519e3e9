"""The one mapping of Postgres types to event JSON, and the conversion of row values.

| Postgres | JSON kind | in the event |
| --- | --- | --- |
| smallint, integer, bigint, oid | integer | number |
| real, double precision | number | number |
| numeric, money | decimal | string, exact (`"12.50"`) |
| text, varchar, char, citext, name, inet, cidr, macaddr, enum | string | string |
| boolean | boolean | true / false |
| timestamptz, timestamp | timestamp | UTC ISO-8601 (`2026-11-20T10:00:00+00:00`); naive = UTC |
| date | date | `2026-11-20` |
| time, timetz | time | `10:00:00` |
| uuid | uuid | string |
| json, jsonb | json | the JSON value itself |
| bytea | bytes | base64 string |
| interval | interval | ISO-8601 duration (`P1DT2H`) |
| any of the above followed by [] | array | array of the element's JSON |

A column whose type is not in the table (geometry, tsvector, bit, ranges, extension types)
is an error of `strangler spec check` unless the spec excludes it or gives `as:` (`string`
casts it to text in the extraction query). Overrides per column: `columns: {c: {as: number}}`
carries a numeric as a JSON number; `as: json` parses JSON kept in a text column.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from strangler.spec.models import JsonKind

PG_TYPES: dict[str, JsonKind] = {
    **dict.fromkeys(("int2", "int4", "int8", "oid"), "integer"),
    **dict.fromkeys(("float4", "float8"), "number"),
    **dict.fromkeys(("numeric", "money"), "decimal"),
    **dict.fromkeys(
        ("text", "varchar", "bpchar", "char", "citext", "name", "inet", "cidr", "macaddr"),
        "string",
    ),
    "bool": "boolean",
    **dict.fromkeys(("timestamptz", "timestamp"), "timestamp"),
    "date": "date",
    **dict.fromkeys(("time", "timetz"), "time"),
    "uuid": "uuid",
    **dict.fromkeys(("json", "jsonb"), "json"),
    "bytea": "bytes",
    "interval": "interval",
}

JSON_SCHEMA_TYPES: dict[JsonKind, dict[str, Any]] = {
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "decimal": {"type": "string", "pattern": r"^-?\d+(\.\d+)?$|^-?Infinity$|^NaN$"},
    "boolean": {"type": "boolean"},
    "json": {},
    "timestamp": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
    "time": {"type": "string"},
    "uuid": {"type": "string", "format": "uuid"},
    "bytes": {"type": "string", "contentEncoding": "base64"},
    "interval": {"type": "string", "pattern": "^-?P"},
    "array": {"type": "array"},
}


def json_kind(pg_type: str, *, is_enum: bool = False) -> JsonKind | None:
    """The JSON kind of a Postgres type name (`pg_type.typname`), or None if unmappable."""
    if is_enum:
        return "string"
    if pg_type.startswith("_"):
        return "array" if json_kind(pg_type[1:]) else None
    return PG_TYPES.get(pg_type)


def iso_duration(value: timedelta) -> str:
    """ISO-8601 duration of a timedelta (`P1DT2H3M4.5S`); negative values lead with `-`."""
    sign = "-" if value < timedelta(0) else ""
    value = abs(value)
    days, rest = value.days, value.seconds
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    secs = (
        f"{seconds}.{value.microseconds:06d}".rstrip("0").rstrip(".")
        if value.microseconds
        else str(seconds)
    )
    clock = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M")) if n) + (
        f"{secs}S" if seconds or value.microseconds else ""
    )
    return (
        f"{sign}P{days}D" + (f"T{clock}" if clock else "") if days else f"{sign}PT{clock or '0S'}"
    )


def _timestamp(value: datetime) -> str:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat()


_BY_TYPE: list[tuple[type, Callable[[Any], Any]]] = [
    (bool, lambda v: v),
    (datetime, _timestamp),
    (date, lambda v: v.isoformat()),
    (time, lambda v: v.isoformat()),
    (Decimal, str),
    (uuid.UUID, str),
    (bytes, lambda v: base64.b64encode(v).decode()),
    (memoryview, lambda v: base64.b64encode(bytes(v)).decode()),
    (timedelta, iso_duration),
]


_PLAIN = frozenset({str, int, float, bool, dict, type(None)})


def to_json(value: Any, kind: JsonKind | None = None) -> Any:
    """A row value as event JSON; `kind` is the column's override (`as:`), if any."""
    if kind is None and type(value) in _PLAIN:
        return value
    if value is None:
        return None
    if kind == "number" and isinstance(value, Decimal):
        return float(value)
    if kind == "json" and isinstance(value, str):
        return json.loads(value)
    if kind == "string" and not isinstance(value, str):
        return str(value)
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, dict | str | int | float):
        return value
    for cls, convert in _BY_TYPE:
        if isinstance(value, cls):
            return convert(value)
    return str(value)
