"""The estate spec: one declarative file describing one monolith (plain pydantic, no Dagster).

Every model rejects unknown keys, so a misspelt key is an error with its path, never a
silently ignored setting. SQL appears in exactly three places, each evaluated by the
monolith's own Postgres inside the read-only extraction query: a named event's `when`
predicate, an `at` time expression, and a field's `sql` expression.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")
TYPE_NAME = re.compile(r"^[A-Z][A-Za-z0-9]{0,62}$")
TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
CLICKHOUSE_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\([A-Za-z0-9_, ']*\))?$")
TEMPLATE_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

JsonKind = Literal[
    "string",
    "integer",
    "number",
    "decimal",
    "boolean",
    "json",
    "timestamp",
    "date",
    "time",
    "uuid",
    "bytes",
    "interval",
    "array",
]


Identifier = Annotated[str, Field(pattern=IDENTIFIER.pattern, examples=["order_id"])]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(Strict):
    """Where the aggregate's rows live in the monolith."""

    db_schema: Identifier = Field(default="public", alias="schema", description="Postgres schema.")
    table: Identifier
    primary_key: list[Identifier] = Field(
        min_length=1, description="Primary key columns, in order (composite keys allowed)."
    )
    updated_at: Identifier | None = Field(
        default=None, description="Column bumped on every edit; makes late edits visible."
    )
    soft_delete: Identifier | None = Field(
        default=None, description="Column that, once set (not NULL / true), marks a deleted row."
    )
    exclude: list[Identifier] = Field(
        default_factory=list, description="Columns never carried into events."
    )

    @property
    def qualified(self) -> str:
        return f"{self.db_schema}.{self.table}"


class OwnDay(Strict):
    """The UTC day of the aggregate's own time column."""

    time_column: Identifier


class ParentDay(Strict):
    """The day of the parent aggregate, through the foreign key declared in `parents`."""

    parent: str = Field(description="Aggregate name of the parent whose day this row lives in.")


class Reference(Strict):
    """Reference data without a time column: migrated and checked as a whole."""

    reference: Literal[True] = True


Partitioning = OwnDay | ParentDay | Reference


class Parent(Strict):
    """A foreign key to another aggregate; also the rule `orphan_fk` unless `enforce: false`."""

    aggregate: str
    columns: list[Identifier] = Field(
        min_length=1, description="Foreign key columns, matching the parent's primary key."
    )
    enforce: bool = Field(default=True, description="Fail rows whose parent row does not exist.")


class SqlField(Strict):
    sql: str = Field(min_length=1, description="SQL expression over the row's columns.")


FieldSource = Identifier | SqlField
"""A payload field: a column name, or `{sql: ...}` evaluated by the monolith's Postgres."""


class GenericEvent(Strict):
    """One of the generic events (import, change, delete); `type` renames it."""

    enabled: bool = True
    type: str | None = Field(default=None, pattern=TYPE_NAME.pattern)
    change: str | None = Field(
        default=None, description="Change name in the event id (default: import/change/delete)."
    )
    fields: dict[str, FieldSource] | None = Field(
        default=None, description="Payload fields (default: every column not excluded)."
    )
    at: str | None = Field(
        default=None, description="SQL expression of the event's time (default: see docs)."
    )


class NamedEvent(Strict):
    """An event emitted while the SQL predicate `when` holds for the row."""

    type: str = Field(pattern=TYPE_NAME.pattern)
    when: str = Field(min_length=1, description="SQL boolean expression over the row.")
    at: str = Field(min_length=1, description="SQL expression giving the event's time.")
    change: str | None = Field(default=None, description="Change name in the event id.")
    identity: list[Identifier] = Field(
        default_factory=list,
        description="Columns whose values make each occurrence distinct (e.g. [status]).",
    )
    fields: dict[str, FieldSource] | None = None


class Events(Strict):
    import_: GenericEvent = Field(default_factory=GenericEvent, alias="import")
    change: GenericEvent = Field(default_factory=GenericEvent)
    delete: GenericEvent = Field(default_factory=GenericEvent)
    named: list[NamedEvent] = Field(default_factory=list)
    schema_version: int = Field(default=1, ge=1, description="Bump when rules or fields change.")


class ColumnRules(Strict):
    """Rules and type override of one column; each failing row lands in failed_entities."""

    required: bool = False
    min: float | None = None
    max: float | None = None
    json_: bool = Field(default=False, alias="json", description="Text that must parse as JSON.")
    no_control_chars: bool = False
    not_future: bool = False
    as_: JsonKind | None = Field(default=None, alias="as", description="Override the JSON type.")
    clickhouse: str | None = Field(
        default=None,
        pattern=CLICKHOUSE_TYPE.pattern,
        description="Override the ClickHouse type of the current-state column, e.g. Decimal(12, 2).",
        examples=["Decimal(12, 2)", "LowCardinality(String)"],
    )


class ParentTenant(Strict):
    """Objects live in the tenant of their parent's object (e.g. a page in its document's)."""

    parent: str = Field(description="Searchable parent aggregate whose tenant the object shares.")


class Chunking(Strict):
    """Texts longer than the model's window are split into overlapping windows, then pooled."""

    max_tokens: int | None = Field(
        default=None, ge=8, description="Window size in word pieces (default: the model's)."
    )
    overlap: int = Field(default=32, ge=0, description="Word pieces shared by adjacent windows.")


class SearchQuery(Strict):
    """A probe of the 'semantic search works' check: a query and what a correct hit satisfies."""

    text: str = Field(min_length=1, description="The query text.")
    expect: dict[Identifier, str | int | float | bool] = Field(
        min_length=1, description="Property values a correct hit has (all must match)."
    )
    min_precision: float = Field(
        default=0.6, ge=0, le=1, description="Share of the top k hits that must be correct."
    )


class Search(Strict):
    """A Weaviate collection of the aggregate's current rows, embedded by the estate's model."""

    text: str = Field(
        min_length=1,
        description="Template of the text to embed: `{field}` is the field's value.",
        examples=["{title} ({category})", "{text}"],
    )
    properties: list[Identifier] | None = Field(
        default=None, description="Fields stored on the object (default: every field)."
    )
    chunking: Chunking = Field(default_factory=Chunking)
    references: bool = Field(
        default=True, description="Reference each searchable parent (from `parents`)."
    )
    tenant: Identifier | ParentTenant | None = Field(
        default=None,
        description=(
            "With multi-tenancy on: the field naming the object's tenant, or {parent: X} to share"
            " the parent's tenant. No tenant key: the collection stays single-tenant."
        ),
    )
    queries: list[SearchQuery] = Field(
        default_factory=list, description="Probes of the semantic-search check."
    )

    @property
    def text_fields(self) -> list[str]:
        return TEMPLATE_FIELD.findall(self.text)


class Aggregate(Strict):
    name: str = Field(pattern=TYPE_NAME.pattern, description="Aggregate type, e.g. Order.")
    source: Source
    partitioning: Partitioning
    topic: str | None = Field(
        default=None,
        pattern=TOPIC_NAME.pattern,
        description="Kafka topic (without the settings' prefix); folded aggregates use the parent's.",
    )
    parents: list[Parent] = Field(default_factory=list)
    fold_into: str | None = Field(
        default=None, description="Parent aggregate whose stream also carries these events."
    )
    events: Events = Field(default_factory=Events)
    columns: dict[Identifier, ColumnRules] = Field(default_factory=dict)
    unique: list[list[Identifier]] = Field(
        default_factory=list, description="Natural keys; later rows with the same key fail."
    )
    search: Search | None = Field(
        default=None, description="Declare to get a Weaviate collection of this aggregate."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Aggregate:
        parents = {p.aggregate for p in self.parents}
        tenant = self.search.tenant if self.search else None
        if isinstance(tenant, ParentTenant) and tenant.parent not in parents:
            raise ValueError(
                f"search.tenant.parent {tenant.parent!r} is not one of parents {sorted(parents)}"
            )
        if isinstance(self.partitioning, ParentDay) and self.partitioning.parent not in parents:
            raise ValueError(
                f"partitioning.parent {self.partitioning.parent!r} is not one of parents {sorted(parents)}"
            )
        if self.fold_into is not None and self.fold_into not in parents:
            raise ValueError(
                f"fold_into {self.fold_into!r} is not one of parents {sorted(parents)}"
            )
        if self.fold_into is None and self.topic is None:
            raise ValueError("topic is required (only an aggregate with fold_into may omit it)")
        if self.events.change.enabled and self.events.import_.fields is not None:
            raise ValueError(
                "change events compare the row with the state its import event carries:"
                " leave events.import.fields unset, or set events.change.enabled: false"
            )
        types = [e.type for e in self.events.named]
        if len(types) != len(set(types)):
            raise ValueError(f"named event types repeat: {types}")
        return self

    def event_type(self, kind: Literal["import", "change", "delete"]) -> str:
        """The generic event's type: the spec's name, else e.g. OrderImported."""
        declared = {
            "import": self.events.import_,
            "change": self.events.change,
            "delete": self.events.delete,
        }[kind].type
        suffix = {"import": "Imported", "change": "Changed", "delete": "Deleted"}[kind]
        return declared or f"{self.name}{suffix}"

    @property
    def stream_type(self) -> str:
        """The aggregate type its events are stored under: its parent's when folded into it."""
        return self.fold_into or self.name

    @property
    def is_reference(self) -> bool:
        return isinstance(self.partitioning, Reference)

    @property
    def event_types(self) -> list[str]:
        """Every event type the aggregate emits: enabled generic ones, then named ones."""
        return _event_types(self)

    def parent(self, name: str) -> Parent:
        return next(p for p in self.parents if p.aggregate == name)


Granularity = Literal["daily", "weekly", "monthly"]
"""How long one partition of dated rows is: a UTC day, a week from Monday, a calendar month."""


class Estate(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")
    first_partition: date | None = Field(
        default=None,
        description=(
            "First partition: the oldest row's day (`strangler spec init` reads it from"
            " the data). Required when any aggregate is partitioned by day. With weekly or"
            " monthly partitions it is rounded down to its Monday or to the 1st of its month."
        ),
    )
    partitions: Granularity = Field(
        default="daily",
        description=(
            "Length of one partition of dated rows: `daily` (a UTC day), `weekly` (Monday to"
            " Sunday, UTC) or `monthly` (a calendar month, UTC). Thin history migrates in far"
            " fewer partitions when weekly or monthly. A partition's key is its first day."
        ),
    )

    def partition_start(self, day: date) -> date:
        """The first day of the partition holding `day` (that partition's key)."""
        if self.partitions == "weekly":
            return day - timedelta(days=day.weekday())
        if self.partitions == "monthly":
            return day.replace(day=1)
        return day

    def partition_end(self, start: date) -> date:
        """The first day after the partition starting on `start` (its end, exclusive)."""
        if self.partitions == "weekly":
            return start + timedelta(days=7)
        if self.partitions == "monthly":
            return (start.replace(day=28) + timedelta(days=4)).replace(day=1)
        return start + timedelta(days=1)


class Analytics(Strict):
    """The user's own ClickHouse analytics: views and derived tables kept as SQL files."""

    sql: str | None = Field(
        default=None,
        description="Folder of SQL files (relative to the spec file), rebuilt in each day swap.",
        examples=["analytics/"],
    )


class EstateSpec(Strict):
    """The whole spec. Aggregates are migrated in the order given: parents first."""

    version: Literal[1] = 1
    estate: Estate
    aggregates: list[Aggregate] = Field(min_length=1)
    analytics: Analytics = Field(default_factory=Analytics)
    _base: Path | None = PrivateAttr(default=None)

    def located(self, spec_file: Path) -> EstateSpec:
        """The spec, knowing the file it was read from (relative paths resolve beside it)."""
        self._base = spec_file.resolve().parent
        return self

    def resolve(self, relative: str) -> Path:
        """A path the spec names, relative to the spec file's folder."""
        path = Path(relative)
        return path if path.is_absolute() else (self._base or Path.cwd()) / path

    @property
    def analytics_dir(self) -> Path | None:
        return self.resolve(self.analytics.sql) if self.analytics.sql else None

    @property
    def searchable(self) -> list[Aggregate]:
        """Aggregates with a `search:` declaration, parents first."""
        return [a for a in self.aggregates if a.search is not None]

    @model_validator(mode="after")
    def _references_resolve(self) -> EstateSpec:
        seen: set[str] = set()
        tables: set[str] = set()
        for aggregate in self.aggregates:
            if aggregate.name in seen:
                raise ValueError(f"aggregate {aggregate.name!r} is declared twice")
            if aggregate.source.qualified in tables:
                raise ValueError(f"table {aggregate.source.qualified} is declared twice")
            for parent in aggregate.parents:
                if parent.aggregate not in seen:
                    raise ValueError(
                        f"{aggregate.name}: parent {parent.aggregate!r} must be declared before it"
                    )
            seen.add(aggregate.name)
            tables.add(aggregate.source.qualified)
        if self.estate.first_partition is None and self.daily:
            raise ValueError(
                "estate.first_partition is required when aggregates are partitioned by day:"
                " set it to the oldest row's day (fixed, so the partition set never shifts)"
            )
        names = [a.source.table for a in self.aggregates]
        if len(names) != len(set(names)):
            raise ValueError(f"table names repeat across schemas: {names} (event ids use them)")
        topics = [a.topic for a in self.aggregates if a.fold_into is None]
        if len(topics) != len(set(topics)):
            raise ValueError(f"topics repeat: {topics}; fold an aggregate into another instead")
        for aggregate in self.aggregates:
            if aggregate.fold_into and self.aggregate(aggregate.fold_into).fold_into:
                raise ValueError(
                    f"{aggregate.name} folds into {aggregate.fold_into}, which is itself folded:"
                    " fold into the aggregate that owns the stream"
                )
            if aggregate.fold_into and aggregate.topic not in (
                None,
                self.topic_of(aggregate.fold_into),
            ):
                raise ValueError(
                    f"{aggregate.name} folds into {aggregate.fold_into}: its topic is"
                    f" {self.topic_of(aggregate.fold_into)!r}, not {aggregate.topic!r}"
                )
        searchable = {a.name for a in self.searchable}
        for aggregate in self.searchable:
            tenant = aggregate.search.tenant if aggregate.search else None
            if isinstance(tenant, ParentTenant) and tenant.parent not in searchable:
                raise ValueError(
                    f"{aggregate.name}: search.tenant.parent {tenant.parent!r} has no search:"
                    " declaration, so it has no tenant to share"
                )
        event_types = [t for a in self.aggregates for t in _event_types(a)]
        repeated = sorted({t for t in event_types if event_types.count(t) > 1})
        if repeated:
            raise ValueError(f"event types declared by more than one aggregate: {repeated}")
        return self

    def topic_of(self, name: str) -> str:
        """The topic of an aggregate's stream (a folded aggregate's is its parent's)."""
        aggregate = self.aggregate(name)
        if aggregate.fold_into:
            return self.topic_of(aggregate.fold_into)
        assert aggregate.topic is not None
        return aggregate.topic

    def aggregate(self, name: str) -> Aggregate:
        for aggregate in self.aggregates:
            if aggregate.name == name:
                return aggregate
        raise KeyError(f"no aggregate {name!r}; the spec has {[a.name for a in self.aggregates]}")

    def by_table(self, table: str) -> Aggregate:
        for aggregate in self.aggregates:
            if table in (aggregate.source.table, aggregate.source.qualified):
                return aggregate
        raise KeyError(f"no aggregate reads table {table!r}")

    @property
    def daily(self) -> list[Aggregate]:
        return [a for a in self.aggregates if not a.is_reference]

    @property
    def reference(self) -> list[Aggregate]:
        return [a for a in self.aggregates if a.is_reference]

    @property
    def topics(self) -> dict[str, str]:
        """Stream type (aggregate not folded into another) -> topic, without the prefix."""
        return {a.name: self.topic_of(a.name) for a in self.aggregates if a.fold_into is None}


def _event_types(aggregate: Aggregate) -> list[str]:
    events = aggregate.events
    generic = [
        aggregate.event_type(kind)  # type: ignore[arg-type]
        for kind, spec in (
            ("import", events.import_),
            ("change", events.change),
            ("delete", events.delete),
        )
        if spec.enabled
    ]
    return [*generic, *(n.type for n in events.named)]
