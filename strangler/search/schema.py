"""The Weaviate collections the estate spec declares, and their idempotent creation.

One collection per aggregate with `search:` (named settings prefix + aggregate name), with
self-provided vectors (no vectorizer module: we embed), HNSW, one property per stored field
typed by `PROPERTY_TYPES`, and one cross-reference per searchable parent. Every object also
carries `day` (the partition it came from, so a day can be replaced), `load_token` (the run
that wrote it, so objects the source no longer has are the ones a run did not touch),
`content_hash` (of the embedded text) and `source_id` (the source row's key as text). An
existing collection that differs from the declaration is reported as drift and left alone:
changing a live index is a human decision.

Property types come from the source columns' Postgres types through the event JSON kinds of
`strangler.spec.types` (a column's `as:` override wins), then this table:

| JSON kind | Weaviate data type | stored value |
| --- | --- | --- |
| integer | int | the number |
| number | number | the number |
| boolean | boolean | true / false |
| timestamp | date | the RFC 3339 text of the event |
| uuid | uuid | the uuid |
| string | text | the text |
| decimal, date, time, interval, bytes | text | the event's exact text (`"12.50"`, `"2026-11-20"`) |
| array of integer, number, string, boolean, uuid | int[], number[], text[], boolean[], uuid[] | the array |
| json, any other array, a column of unknown type | text | the text of its JSON |

A `sql:` field has the type its expression ends by casting to (`confidence::float8` is a
number); without a final cast it is the text of its JSON.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import weaviate
from weaviate.classes.config import (
    Configure,
    DataType,
    Property,
    ReferenceProperty,
    Tokenization,
    VectorDistances,
)

from strangler.migration.drift import baseline_table, recorded_columns
from strangler.spec.models import (
    Aggregate,
    EstateSpec,
    FieldSource,
    JsonKind,
    ParentTenant,
    SearchQuery,
)
from strangler.spec.types import json_kind

DAY = "day"
LOAD_TOKEN = "load_token"
CONTENT_HASH = "content_hash"
SOURCE_ID = "source_id"
"""The source row's key as text (the event metadata's `source_id`)."""
RESERVED = (DAY, LOAD_TOKEN, CONTENT_HASH, SOURCE_ID)
"""Properties every object carries; a field of the same name cannot be stored."""
WEAVIATE_RESERVED = frozenset({"id", "_id", "_additional", "vector"})
"""Names Weaviate refuses as properties: left out of the default properties (`source_id`
holds the key), an error when listed."""
_PROPERTY_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]{0,230}$")
_KEYWORD = frozenset(RESERVED)

PROPERTY_TYPES: dict[JsonKind, DataType] = {
    "integer": DataType.INT,
    "number": DataType.NUMBER,
    "boolean": DataType.BOOL,
    "timestamp": DataType.DATE,
    "uuid": DataType.UUID,
    "string": DataType.TEXT,
    "decimal": DataType.TEXT,
    "date": DataType.TEXT,
    "time": DataType.TEXT,
    "interval": DataType.TEXT,
    "bytes": DataType.TEXT,
}
"""JSON kind -> Weaviate data type (the table above); a kind not here is the text of its JSON."""
ARRAY_TYPES: dict[JsonKind, DataType] = {
    "integer": DataType.INT_ARRAY,
    "number": DataType.NUMBER_ARRAY,
    "string": DataType.TEXT_ARRAY,
    "boolean": DataType.BOOL_ARRAY,
    "uuid": DataType.UUID_ARRAY,
}


def property_type(pg_type: str | None, override: JsonKind | None = None) -> DataType | None:
    """The Weaviate type of a column (`pg_type.typname`, `as:` override), or None: the
    property holds the text of the value's JSON."""
    if override is not None and override != "array":
        return PROPERTY_TYPES.get(override)
    if pg_type is None:
        return None
    if pg_type.startswith("_"):
        element = json_kind(pg_type[1:])
        return ARRAY_TYPES.get(element) if element else None
    kind = json_kind(pg_type)
    return PROPERTY_TYPES.get(kind) if kind else None


_CAST = re.compile(r"::\s*([A-Za-z_][A-Za-z0-9_ ]*?)\s*(\[\])?\s*$")
_TYPE_ALIASES = {
    "smallint": "int2",
    "integer": "int4",
    "int": "int4",
    "bigint": "int8",
    "real": "float4",
    "double precision": "float8",
    "boolean": "bool",
    "character varying": "varchar",
    "timestamp with time zone": "timestamptz",
}


def cast_type(sql: str) -> str | None:
    """The Postgres type a `sql:` field ends by casting to (`confidence::float8` -> float8,
    `tags::text[]` -> _text); None when the expression does not end in a cast."""
    match = _CAST.search(sql)
    if match is None:
        return None
    name = " ".join(match.group(1).lower().split())
    name = _TYPE_ALIASES.get(name, name)
    return f"_{name}" if match.group(2) else name


def reference_name(parent: str) -> str:
    """The reference property to a parent aggregate: its name in snake case (`OrderLine` ->
    `order_line`)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", parent).lower()


@dataclass(frozen=True)
class SchemaOptions:
    """Index settings (from STRANGLER_WEAVIATE_* settings)."""

    distance: str = "cosine"
    ef_construction: int = 128
    max_connections: int = 32
    ef: int = -1
    replication_factor: int = 1
    multi_tenancy: bool = False


@dataclass(frozen=True)
class CollectionNames:
    """Collection names, optionally prefixed (tests and side-by-side deployments)."""

    prefix: str = ""

    def of(self, aggregate: str) -> str:
        # Weaviate capitalizes the first letter of a class name; keep prefixes capitalized.
        name = f"{self.prefix}{aggregate}"
        return name[:1].upper() + name[1:]


@dataclass(frozen=True)
class ReferenceDecl:
    """A reference to the object of a searchable parent, from the row's foreign key."""

    name: str
    target: str
    """The parent aggregate."""
    target_collection: str
    fields: tuple[str, ...]
    """The payload fields holding the foreign key columns, in the parent key's order."""


@dataclass(frozen=True)
class CollectionDecl:
    """Everything the sink and the checks need of one searchable aggregate."""

    aggregate: str
    name: str
    stream_type: str
    source_table: str
    upsert_events: frozenset[str]
    """Event types whose payloads make up the row's state."""
    delete_events: frozenset[str]
    text: str
    """The `search.text` template."""
    properties: dict[str, DataType]
    """Stored fields (reserved properties excluded) -> Weaviate type."""
    json_text: frozenset[str]
    """Stored fields kept as the text of their JSON."""
    references: tuple[ReferenceDecl, ...] = ()
    tenant_field: str | None = None
    tenant_parent: str | None = None
    """With multi-tenancy on: the field naming the tenant, or the parent whose tenant it shares."""
    parent_fields: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Searchable parent aggregate -> the payload fields of its foreign key."""
    chunk_overlap: int = 32
    max_tokens: int | None = None
    queries: tuple[SearchQuery, ...] = ()
    description: str = ""
    multi_tenant: bool = False

    @property
    def has_tenant_key(self) -> bool:
        return self.tenant_field is not None or self.tenant_parent is not None

    def all_properties(self) -> dict[str, DataType]:
        common = {name: DataType.TEXT for name in RESERVED}
        return {**self.properties, **common}


class SearchDeclarationError(ValueError):
    """A `search:` block that cannot become a collection (named field unknown, name taken)."""


def _field_sources(aggregate: Aggregate, columns: Sequence[str]) -> dict[str, FieldSource]:
    """Every payload field of the aggregate's non-delete events -> its source (a column name,
    or a `sql:` field). Generic payloads carry every column not excluded."""
    excluded = set(aggregate.source.exclude)
    every = {c: c for c in columns if c not in excluded}
    events = aggregate.events
    out: dict[str, FieldSource] = {}
    generic = [events.import_, events.change]
    for event in generic:
        if event.enabled:
            out.update(every if event.fields is None else event.fields)
    for named in events.named:
        out.update(every if named.fields is None else named.fields)
    return out


def upsert_event_types(aggregate: Aggregate) -> frozenset[str]:
    """The event types that carry the row's state (every enabled one but the delete)."""
    deletes = delete_event_types(aggregate)
    return frozenset(t for t in aggregate.event_types if t not in deletes)


def delete_event_types(aggregate: Aggregate) -> frozenset[str]:
    return (
        frozenset({aggregate.event_type("delete")})
        if aggregate.events.delete.enabled
        else frozenset()
    )


def declare(
    spec: EstateSpec,
    names: CollectionNames,
    columns: Mapping[str, Mapping[str, str]],
    *,
    multi_tenancy: bool = False,
) -> list[CollectionDecl]:
    """The collections of `spec.searchable`, parents first.

    `columns`: aggregate name -> the source table's columns and their Postgres types (the event
    store's drift baseline, which the first event-store migration records).
    """
    searchable = {a.name for a in spec.searchable}
    out: list[CollectionDecl] = []
    for aggregate in spec.searchable:
        search = aggregate.search
        assert search is not None
        if aggregate.is_reference:
            raise SearchDeclarationError(
                f"{aggregate.name}: search: is for aggregates partitioned by time; reference"
                " data has no partition to load"
            )
        table_columns = dict(columns.get(aggregate.name, {}))
        sources = _field_sources(aggregate, list(table_columns))
        if not table_columns:
            raise SearchDeclarationError(
                f"{aggregate.name}: no column types of {aggregate.source.qualified} are recorded"
                " yet (its collection is typed from them); migrate one partition to the event"
                " store first: `strangler migrate events --partition YYYY-MM-DD` (asset"
                " event_store/events)"
            )

        def field_of(
            column: str,
            aggregate: Aggregate = aggregate,
            sources: dict[str, FieldSource] = sources,
        ) -> str:
            for name, source in sources.items():
                if source == column:
                    return name
            raise SearchDeclarationError(
                f"{aggregate.name}: no payload field carries column {column!r}"
            )

        references: list[ReferenceDecl] = []
        parent_fields: dict[str, tuple[str, ...]] = {}
        for parent in aggregate.parents:
            if parent.aggregate not in searchable:
                continue
            fields = tuple(field_of(c) for c in parent.columns)
            parent_fields[parent.aggregate] = fields
            if search.references:
                references.append(
                    ReferenceDecl(
                        reference_name(parent.aggregate),
                        parent.aggregate,
                        names.of(parent.aggregate),
                        fields,
                    )
                )
        tenant = search.tenant
        tenant_field = tenant if isinstance(tenant, str) else None
        tenant_parent = tenant.parent if isinstance(tenant, ParentTenant) else None
        if tenant_parent is not None and tenant_parent not in parent_fields:
            raise SearchDeclarationError(
                f"{aggregate.name}: search.tenant.parent {tenant_parent!r} is not a searchable parent"
            )
        wanted = (
            list(search.properties)
            if search.properties is not None
            else [f for f in sources if f not in WEAVIATE_RESERVED]
        )
        # Stored too, whatever `properties` says: what the checks and the tenant read back.
        implied = [
            *search.text_fields,
            *(f for fields in parent_fields.values() for f in fields),
            *([tenant_field] if tenant_field else []),
        ]
        stored = list(dict.fromkeys([*wanted, *implied]))
        for name in stored:
            if name not in sources:
                raise SearchDeclarationError(
                    f"{aggregate.name}: search names field {name!r}, which its events do not"
                    f" carry (fields: {sorted(sources)})"
                )
            if name in RESERVED or name in WEAVIATE_RESERVED or not _PROPERTY_NAME.match(name):
                raise SearchDeclarationError(
                    f"{aggregate.name}: field {name!r} cannot be a Weaviate property (reserved:"
                    f" {sorted({*RESERVED, *WEAVIATE_RESERVED})}); leave it out of"
                    " search.properties or rename it in the event's fields"
                )
        ref_names = {r.name for r in references}
        clash = ref_names & set(stored)
        if clash:
            raise SearchDeclarationError(
                f"{aggregate.name}: reference names {sorted(clash)} are also fields"
            )
        properties: dict[str, DataType] = {}
        json_text: set[str] = set()
        for name in stored:
            source = sources[name]
            dtype: DataType | None = None
            if isinstance(source, str):
                rules = aggregate.columns.get(source)
                dtype = property_type(table_columns.get(source), rules.as_ if rules else None)
            else:
                dtype = property_type(cast_type(source.sql))
            if dtype is None:
                json_text.add(name)
                dtype = DataType.TEXT
            properties[name] = dtype
        for query in search.queries:
            unknown = sorted(set(query.expect) - set(properties))
            if unknown:
                raise SearchDeclarationError(
                    f"{aggregate.name}: search query {query.text!r} expects {unknown}, which are"
                    " not stored properties"
                )
        out.append(
            CollectionDecl(
                aggregate=aggregate.name,
                name=names.of(aggregate.name),
                stream_type=aggregate.stream_type,
                source_table=aggregate.source.table,
                upsert_events=upsert_event_types(aggregate),
                delete_events=delete_event_types(aggregate),
                text=search.text,
                properties=properties,
                json_text=frozenset(json_text),
                references=tuple(references),
                tenant_field=tenant_field,
                tenant_parent=tenant_parent,
                parent_fields=parent_fields,
                chunk_overlap=search.chunking.overlap,
                max_tokens=search.chunking.max_tokens,
                queries=tuple(search.queries),
                description=(
                    f"{aggregate.name} rows of {aggregate.source.qualified}; vector of"
                    f" {search.text!r}"
                ),
                multi_tenant=multi_tenancy
                and (tenant_field is not None or tenant_parent is not None),
            )
        )
    return out


def recorded_types(conn: Any, spec: EstateSpec) -> dict[str, dict[str, str]]:
    """Aggregate -> column -> Postgres type of every searchable aggregate's source table, from
    the event store's drift baseline (`migration_state.source_columns`). An estate database
    no migration has set up yet has no baseline: nothing is recorded."""
    try:
        return {a.name: recorded_columns(conn, baseline_table(a)) for a in spec.searchable}
    except psycopg.errors.UndefinedTable:
        conn.rollback()
        return {a.name: {} for a in spec.searchable}


def declare_from_store(
    conn: Any, spec: EstateSpec, names: CollectionNames, *, multi_tenancy: bool = False
) -> list[CollectionDecl]:
    """`declare`, typed by the event store's baseline (`conn`: the estate's database; its
    transaction is committed)."""
    decls = declare(spec, names, recorded_types(conn, spec), multi_tenancy=multi_tenancy)
    conn.commit()
    return decls


@dataclass
class SchemaReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)


def ensure_schema(
    client: weaviate.WeaviateClient,
    decls: Sequence[CollectionDecl],
    options: SchemaOptions | None = None,
) -> SchemaReport:
    """Create missing collections; report (never change) differences in existing ones."""
    options = options or SchemaOptions()
    report = SchemaReport()
    for decl in decls:
        if client.collections.exists(decl.name):
            report.existing.append(decl.name)
            report.drift.extend(_drift(client, decl, options))
            continue
        try:
            _create(client, decl, options)
            report.created.append(decl.name)
        except weaviate.exceptions.UnexpectedStatusCodeError as exc:
            # Another process created it between exists() and create(): that is fine.
            if "already exists" not in str(exc):
                raise
            report.existing.append(decl.name)
    return report


def _create(client: weaviate.WeaviateClient, decl: CollectionDecl, options: SchemaOptions) -> None:
    client.collections.create(
        decl.name,
        description=decl.description,
        properties=[
            Property(
                name=name,
                data_type=dtype,
                tokenization=Tokenization.FIELD if name in _KEYWORD else None,
                index_searchable=False if name in _KEYWORD else None,
            )
            for name, dtype in decl.all_properties().items()
        ],
        references=[
            ReferenceProperty(name=r.name, target_collection=r.target_collection)
            for r in decl.references
        ],
        vector_config=Configure.Vectors.self_provided(
            vector_index_config=Configure.VectorIndex.hnsw(
                distance_metric=VectorDistances(options.distance),
                ef_construction=options.ef_construction,
                max_connections=options.max_connections,
                ef=options.ef,
            )
        ),
        replication_config=Configure.replication(factor=options.replication_factor),
        inverted_index_config=Configure.inverted_index(index_null_state=False),
        multi_tenancy_config=(
            Configure.multi_tenancy(
                enabled=True, auto_tenant_creation=True, auto_tenant_activation=True
            )
            if decl.multi_tenant
            else None
        ),
    )


def _drift(
    client: weaviate.WeaviateClient, decl: CollectionDecl, options: SchemaOptions
) -> list[str]:
    """Human-readable differences between the live collection and the declaration."""
    config = client.collections.get(decl.name).config.get()
    found: list[str] = []
    declared = decl.all_properties()
    live = {p.name: p.data_type for p in config.properties}
    for name, dtype in declared.items():
        if name not in live:
            found.append(f"{decl.name}.{name}: missing (declared {dtype.value})")
        elif live[name] != dtype:
            found.append(f"{decl.name}.{name}: {live[name].value} (declared {dtype.value})")
    for name in sorted(set(live) - set(declared)):
        found.append(f"{decl.name}.{name}: not declared")
    refs = {r.name: list(r.target_collections) for r in config.references}
    for ref in decl.references:
        if refs.get(ref.name) != [ref.target_collection]:
            found.append(
                f"{decl.name}.{ref.name}: references {refs.get(ref.name)}"
                f" (declared [{ref.target_collection}])"
            )
    index: Any = None
    if config.vector_config:
        index = next(iter(config.vector_config.values())).vector_index_config
    elif config.vector_index_config is not None:
        index = config.vector_index_config
    if index is not None:
        distance = getattr(index, "distance_metric", None)
        if distance is not None and distance.value != options.distance:
            found.append(f"{decl.name}: distance {distance.value} (declared {options.distance})")
        for attr in ("ef_construction", "max_connections"):
            value = getattr(index, attr, None)
            if value is not None and value != getattr(options, attr):
                found.append(f"{decl.name}: {attr} {value} (declared {getattr(options, attr)})")
    factor = config.replication_config.factor if config.replication_config else None
    if factor is not None and factor != options.replication_factor:
        found.append(
            f"{decl.name}: replication factor {factor} (declared {options.replication_factor})"
        )
    tenancy = config.multi_tenancy_config
    live_mt = bool(tenancy and tenancy.enabled)
    if live_mt != decl.multi_tenant:
        found.append(
            f"{decl.name}: multi-tenancy {'on' if live_mt else 'off'} (declared "
            f"{'on' if decl.multi_tenant else 'off'}; STRANGLER_WEAVIATE_MULTI_TENANCY): objects"
            f" keep going where the live collection puts them"
            f" ({'one tenant per tenant key' if live_mt else 'no tenants'})"
        )
    return found


def drop(client: weaviate.WeaviateClient, names: CollectionNames, spec: EstateSpec) -> None:
    """Delete the spec's collections (tests and benchmarks; never called by assets)."""
    for aggregate in reversed(spec.searchable):
        client.collections.delete(names.of(aggregate.name))
