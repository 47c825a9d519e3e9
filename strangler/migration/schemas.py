"""JSON Schemas of the event types a spec declares, for the event-type registry.

Compiled from the spec's rules: key and parent columns and `required` columns are required
and not null, `min`/`max` bound numbers. The extraction query already flags rule breaks; the
registry is the second line, guarding every event that reaches the store.
"""

from __future__ import annotations

from typing import Any

from strangler.spec.models import Aggregate, EstateSpec, FieldSource, SqlField

Schema = dict[str, Any]
NOT_NULL = ["string", "number", "boolean", "object", "array"]
"""Every JSON type but null: a positive test (`not: {type: null}` costs an exception per
valid value in the compiled validator)."""
DRAFT = "https://json-schema.org/draft/2020-12/schema"


def _column_schema(aggregate: Aggregate, column: str, required: set[str]) -> Schema:
    rules = aggregate.columns.get(column)
    schema: Schema = {}
    if column in required:
        schema["type"] = NOT_NULL
    if rules is not None:
        if rules.min is not None:
            schema["minimum"] = rules.min
        if rules.max is not None:
            schema["maximum"] = rules.max
    return schema


def _object(aggregate: Aggregate, fields: dict[str, FieldSource] | None, *, strict: bool) -> Schema:
    """`strict`: fields that come from required columns must be present."""
    required_columns = {
        *aggregate.source.primary_key,
        *(c for p in aggregate.parents if p.enforce for c in p.columns),
        *(c for c, r in aggregate.columns.items() if r.required),
    }
    if fields is None:
        fields = {c: c for c in {*required_columns, *aggregate.columns}}
        open_ended = True
    else:
        open_ended = False
    properties: Schema = {}
    required: list[str] = []
    for name, source in sorted(fields.items()):
        if isinstance(source, SqlField):
            properties[name] = {}
            continue
        properties[name] = _column_schema(aggregate, source, required_columns)
        if strict and source in required_columns:
            required.append(name)
    return {
        "$schema": DRAFT,
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": open_ended,
    }


def event_schemas(aggregate: Aggregate) -> dict[str, Schema]:
    """Event type -> schema, for every event the aggregate can emit."""
    events = aggregate.events
    out: dict[str, Schema] = {}
    if events.import_.enabled:
        out[aggregate.event_type("import")] = _object(aggregate, events.import_.fields, strict=True)
    if events.change.enabled:
        change = _object(aggregate, events.change.fields, strict=False)
        out[aggregate.event_type("change")] = {**change, "minProperties": 1}
    if events.delete.enabled:
        out[aggregate.event_type("delete")] = (
            _object(aggregate, events.delete.fields, strict=True)
            if events.delete.fields is not None
            else {"$schema": DRAFT, "type": "object", "required": ["id"]}
        )
    for named in events.named:
        out[named.type] = _object(aggregate, named.fields, strict=True)
    return out


def registry_entries(spec: EstateSpec) -> list[tuple[str, int, Schema]]:
    """(type, version, schema) triples for `EventTypeRegistry.register_many`."""
    return [
        (name, aggregate.events.schema_version, schema)
        for aggregate in spec.aggregates
        for name, schema in event_schemas(aggregate).items()
    ]


def schemas_by_type(spec: EstateSpec) -> dict[str, Schema]:
    return {name: schema for name, _, schema in registry_entries(spec)}
