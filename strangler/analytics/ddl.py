"""ClickHouse DDL: the generic tables, the spec's current-state tables and the user's analytics.

Three sources make one schema:
- sql/clickhouse/NNN_*.sql: the generic tables (the `events` table every aggregate shares),
  numbered, append-only once applied (their checksums are recorded in `_schema_versions`);
- per aggregate of the spec, a generated current-state table (strangler.analytics.state);
- the spec's analytics folder (`analytics: {sql: ...}`): the user's tables, materialized views
  and derived tables (`derived/<table>.sql`), same placeholders as the generic files.
Current-state and user objects are derivable from `events`: each target's DDL is versioned by
its checksum (`_derived_versions`), and a change drops the target, creates it anew and rebuilds
it from the live `events` table. This module parses the files into tables, views and derived
tables (so a partition swap can rebuild a view's target with the view's own SELECT), renders
them for a database (and optionally `ON CLUSTER` + Replicated engines), and applies them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from strangler.spec.models import EstateSpec

SQL_DIR = Path(__file__).resolve().parents[2] / "sql" / "clickhouse"
"""The repository's sql/clickhouse (the package is installed editable)."""

DEFAULT_DATABASE = "analytics"
VERSIONS_TABLE = "_schema_versions"
DERIVED_VERSIONS_TABLE = "_derived_versions"
PRE_SPEC_LAYOUT: dict[int, str] = {
    1: "38d5395ee2b1d87f072ae8bb29ea593ff9fb1a0908d506ba3d7d6fdf67786a5f",
}
"""Recorded checksums of the layout before the estate spec (one day-partitioned events table
with fixed columns). A database holding it is rebuilt: everything in it derives from the event
store and Kafka, so its partitions are simply loaded again."""
REPLICA_PATH = "/clickhouse/tables/{shard}/{database}/{table}"
REPLICA_NAME = "{replica}"

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FILE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
_USER_FILE = re.compile(r"^[A-Za-z0-9_]+\.sql$")
_TABLE_REF = re.compile(r"\{\{db\}\}\.`([A-Za-z_][A-Za-z0-9_]*)`")
_ENGINE = re.compile(r"\{\{engine ([A-Za-z]+)(?:\(([^)]*)\))?\}\}")
_CREATE_TABLE = re.compile(
    r"^CREATE TABLE IF NOT EXISTS \{\{db\}\}\.`([A-Za-z_][A-Za-z0-9_]*)`", re.IGNORECASE
)
_ALTER_TABLE = re.compile(r"^ALTER TABLE \{\{db\}\}\.`([A-Za-z_][A-Za-z0-9_]*)`", re.IGNORECASE)
_CREATE_VIEW = re.compile(
    r"^CREATE MATERIALIZED VIEW IF NOT EXISTS \{\{db\}\}\.`([A-Za-z_][A-Za-z0-9_]*)`"
    r"\{\{on_cluster\}\}\s+TO \{\{db\}\}\.`([A-Za-z_][A-Za-z0-9_]*)`\s+AS\s+(SELECT\b.*)$",
    re.IGNORECASE | re.DOTALL,
)


class DdlError(RuntimeError):
    """The SQL templates or the database's recorded versions are not what this code expects."""


def validate_identifier(name: str, what: str = "identifier") -> str:
    """Reject anything that is not a plain identifier, so config never reaches SQL as code."""
    if not isinstance(name, str) or not _IDENT.match(name):
        raise ValueError(f"invalid ClickHouse {what}: {name!r} (expected ^[A-Za-z_][A-Za-z0-9_]*$)")
    return name


def quote_identifier(name: str, what: str = "identifier") -> str:
    return f"`{validate_identifier(name, what)}`"


@dataclass(frozen=True, slots=True)
class DdlOptions:
    """Where the schema lives: a database, and optionally a cluster (Replicated engines)."""

    database: str = DEFAULT_DATABASE
    cluster: str | None = None
    replica_path: str = REPLICA_PATH
    replica_name: str = REPLICA_NAME

    def __post_init__(self) -> None:
        validate_identifier(self.database, "database name")
        if self.cluster is not None:
            validate_identifier(self.cluster, "cluster name")
        for value in (self.replica_path, self.replica_name):
            if "'" in value or "\\" in value:
                raise ValueError(f"replica path/name must not contain quotes: {value!r}")

    @property
    def db(self) -> str:
        return quote_identifier(self.database, "database name")

    @property
    def on_cluster(self) -> str:
        return f" ON CLUSTER {quote_identifier(self.cluster)}" if self.cluster else ""

    def table(self, name: str) -> str:
        """`db`.`table`, both validated."""
        return f"{self.db}.{quote_identifier(name, 'table name')}"

    def engine(self, family: str, args: str = "") -> str:
        """MergeTree family engine; Replicated with a per-table keeper path in cluster mode."""
        validate_identifier(family, "engine")
        if not family.endswith("MergeTree"):
            raise DdlError(f"only MergeTree engines are templated, got {family}")
        if not self.cluster:
            return f"{family}({args})" if args else family
        replicated = [f"'{self.replica_path}'", f"'{self.replica_name}'"]
        if args:
            replicated.append(args)
        return f"Replicated{family}({', '.join(replicated)})"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]
    checksum: str


@dataclass(frozen=True, slots=True)
class Derivation:
    """`INSERT INTO target SELECT ... FROM source`: a view's SELECT or a derived table's."""

    target: str
    source: str
    select: str
    view: str | None = None
    statement: str = ""
    """A view's own CREATE MATERIALIZED VIEW template (empty for a derived table)."""


@dataclass(frozen=True, slots=True)
class Schema:
    """What the migrations build, in order."""

    migrations: tuple[Migration, ...]
    tables: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Per table: its CREATE template and any later ALTER templates, in migration order."""
    views: tuple[Derivation, ...] = ()
    derived: tuple[Derivation, ...] = ()
    versioned: Mapping[str, str] = field(default_factory=dict)
    """Target -> checksum of its DDL and derivations, for targets rebuilt when they change
    (current-state tables and the user's analytics); generic tables are not in it."""

    @property
    def loaded_tables(self) -> tuple[str, ...]:
        """Tables filled from outside (not derived, not a view target)."""
        built = {d.target for d in (*self.views, *self.derived)}
        return tuple(t for t in self.tables if t not in built)

    @property
    def swapped_tables(self) -> tuple[str, ...]:
        """Every table a day swap replaces: loaded ones, then derived tables, then view targets."""
        return (
            *self.loaded_tables,
            *(d.target for d in self.derived),
            *(d.target for d in self.views),
        )


def split_statements(text: str) -> list[str]:
    """Statements of a file: `--` comment lines dropped, split on a `;` ending a line."""
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("--")]
    body = "\n".join(lines)
    parts = re.split(r";[ \t]*(?:\n|$)", body)
    return [p.strip() for p in parts if p.strip()]


def _single_source(select: str, where: str) -> str:
    sources = set(_TABLE_REF.findall(select))
    if len(sources) != 1:
        raise DdlError(f"{where}: a rebuildable SELECT reads exactly one table, found {sources}")
    return sources.pop()


class _Objects:
    """Tables, views and derived tables collected from statements, checked as they come."""

    def __init__(self) -> None:
        self.tables: dict[str, list[str]] = {}
        self.views: dict[str, Derivation] = {}
        self.derived: list[Derivation] = []
        self.texts: dict[str, list[str]] = {}
        """Target -> the statements that define it (for the versioned checksums)."""

    def add(self, stmt: str, where: str) -> None:
        if created := _CREATE_TABLE.match(stmt):
            name = created.group(1)
            if name in self.tables:
                raise DdlError(f"{where}: table {name} is created twice")
            self.tables[name] = [stmt]
            self.texts.setdefault(name, []).append(stmt)
        elif altered := _ALTER_TABLE.match(stmt):
            if altered.group(1) not in self.tables:
                raise DdlError(f"{where}: ALTER of unknown table {altered.group(1)}")
            self.tables[altered.group(1)].append(stmt)
            self.texts.setdefault(altered.group(1), []).append(stmt)
        elif view := _CREATE_VIEW.match(stmt):
            name, target, select = view.groups()
            source = _single_source(select, f"{where} view {name}")
            self.views[name] = Derivation(
                target=target, source=source, select=select, view=name, statement=stmt
            )
            self.texts.setdefault(target, []).append(stmt)
        else:
            raise DdlError(f"{where}: unsupported statement: {stmt[:80]!r}")

    def add_derived(self, target: str, select: str, where: str) -> None:
        if target not in self.tables:
            raise DdlError(f"{where}: no table {target} is created for it")
        self.derived.append(
            Derivation(target=target, source=_single_source(select, where), select=select)
        )
        self.texts.setdefault(target, []).append(select)


def _derived_files(folder: Path, objects: _Objects) -> None:
    for path in sorted((folder / "derived").glob("*.sql")):
        statements = split_statements(path.read_text(encoding="utf-8"))
        if len(statements) != 1:
            raise DdlError(f"derived/{path.name}: one SELECT per file, found {len(statements)}")
        objects.add_derived(path.stem, statements[0], f"derived/{path.name}")


def load_schema(sql_dir: Path = SQL_DIR) -> Schema:
    """Parse the numbered generic files (and derived/*.sql) into a Schema; fails loudly."""
    if not sql_dir.is_dir():
        raise DdlError(f"ClickHouse SQL directory not found: {sql_dir}")
    migrations: list[Migration] = []
    objects = _Objects()
    for path in sorted(sql_dir.glob("*.sql")):
        m = _FILE.match(path.name)
        if not m:
            raise DdlError(f"{path.name}: ClickHouse migrations are named NNN_name.sql")
        text = path.read_text(encoding="utf-8")
        statements = tuple(split_statements(text))
        migrations.append(
            Migration(
                version=int(m.group(1)),
                name=m.group(2),
                statements=statements,
                checksum=hashlib.sha256(text.encode()).hexdigest(),
            )
        )
        for stmt in statements:
            objects.add(stmt, path.name)
    versions = [mig.version for mig in migrations]
    if len(set(versions)) != len(versions):
        raise DdlError(f"duplicate ClickHouse migration versions: {versions}")
    _derived_files(sql_dir, objects)
    return _schema(tuple(migrations), objects, versioned=())


def _schema(
    migrations: tuple[Migration, ...], objects: _Objects, versioned: Sequence[str]
) -> Schema:
    for d in (*objects.derived, *objects.views.values()):
        if d.target not in objects.tables or d.source not in objects.tables:
            raise DdlError(f"{d.view or d.target}: reads or writes a table the schema lacks")
    return Schema(
        migrations=migrations,
        tables={k: tuple(v) for k, v in objects.tables.items()},
        views=tuple(objects.views.values()),
        derived=tuple(objects.derived),
        versioned={
            t: hashlib.sha256("\n;\n".join(objects.texts[t]).encode()).hexdigest()
            for t in versioned
        },
    )


def build_schema(
    spec: EstateSpec,
    column_types: Mapping[str, Mapping[str, str]] | None = None,
    generic_dir: Path = SQL_DIR,
) -> Schema:
    """The whole schema of an estate: generic tables, then one current-state table per
    aggregate (typed by `column_types`: `schema.table` -> column -> Postgres type), then the
    user's analytics folder. Built in that order, so a user view may read a current-state table."""
    from strangler.analytics.state import state_derivation

    generic = load_schema(generic_dir)
    objects = _Objects()
    for table, statements in generic.tables.items():
        objects.tables[table] = list(statements)
        objects.texts[table] = list(statements)
    for view in generic.views:
        objects.views[view.view or view.target] = view
    objects.derived.extend(generic.derived)
    versioned: list[str] = []
    for aggregate in spec.aggregates:
        types = (column_types or {}).get(aggregate.source.qualified, {})
        target, create, select = state_derivation(aggregate, types)
        objects.add(create, f"current state of {aggregate.name}")
        objects.add_derived(target, select, f"current state of {aggregate.name}")
        versioned.append(target)
    folder = spec.analytics_dir
    if folder is not None:
        if not folder.is_dir():
            raise DdlError(f"analytics folder not found: {folder} (the spec's analytics.sql)")
        before = set(objects.tables)
        for path in sorted(folder.glob("*.sql")):
            if not _USER_FILE.match(path.name):
                raise DdlError(f"{path}: analytics files are named <name>.sql")
            for stmt in split_statements(path.read_text(encoding="utf-8")):
                if _ALTER_TABLE.match(stmt):
                    raise DdlError(f"{path.name}: change the CREATE instead of adding an ALTER")
                objects.add(stmt, path.name)
        _derived_files(folder, objects)
        versioned += [t for t in objects.tables if t not in before]
    return _schema(generic.migrations, objects, versioned)


@lru_cache(maxsize=1)
def default_schema() -> Schema:
    """The schema of the settings' spec, current-state columns untyped (names are what callers
    of this need: which tables a swap or a rollback touches)."""
    from strangler.spec import current_spec

    return build_schema(current_spec())


def render(template: str, options: DdlOptions, renames: Mapping[str, str] | None = None) -> str:
    """Fill a template's placeholders; `renames` points table references elsewhere (staging)."""
    renames = renames or {}

    def table_ref(match: re.Match[str]) -> str:
        name = match.group(1)
        return options.table(renames.get(name, name))

    out = _TABLE_REF.sub(table_ref, template)
    out = out.replace("{{db}}", options.db).replace("{{on_cluster}}", options.on_cluster)
    out = _ENGINE.sub(lambda m: options.engine(m.group(1), m.group(2) or ""), out)
    if "{{" in out:
        raise DdlError(f"unknown placeholder left in: {out[:120]!r}")
    return out


def create_database_sql(options: DdlOptions) -> str:
    return f"CREATE DATABASE IF NOT EXISTS {options.db}{options.on_cluster}"


def versions_table_sql(options: DdlOptions) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {options.table(VERSIONS_TABLE)}{options.on_cluster}"
        " (version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC'))"
        f" ENGINE = {options.engine('ReplacingMergeTree')} ORDER BY version"
    )


def migration_sql(migration: Migration, options: DdlOptions) -> list[str]:
    return [render(stmt, options) for stmt in migration.statements]


def target_sql(schema: Schema, target: str, options: DdlOptions) -> list[str]:
    """CREATE statements of one table and of the views writing into it."""
    out = [render(stmt, options) for stmt in schema.tables[target]]
    out += [render(v.statement, options) for v in schema.views if v.target == target]
    return out


def schema_sql(options: DdlOptions, schema: Schema | None = None) -> list[str]:
    """Every statement that builds the schema from nothing, in order (for review and tests)."""
    schema = schema or default_schema()
    out = [
        create_database_sql(options),
        versions_table_sql(options),
        derived_versions_table_sql(options),
    ]
    for migration in schema.migrations:
        out.extend(migration_sql(migration, options))
    for target in schema.versioned:
        out.extend(target_sql(schema, target, options))
    return out


def staging_table_sql(
    schema: Schema, table: str, staging_name: str, options: DdlOptions
) -> list[str]:
    """A twin of `table` (same columns, keys, partitioning; its own keeper path in cluster mode)."""
    statements = schema.tables[table]
    return [render(stmt, options, {table: staging_name}) for stmt in statements]


def derivation_sql(derivation: Derivation, options: DdlOptions, renames: Mapping[str, str]) -> str:
    """INSERT INTO <target twin> SELECT ... FROM <source twin> (names given by `renames`)."""
    target = options.table(renames.get(derivation.target, derivation.target))
    return f"INSERT INTO {target} {render(derivation.select, options, renames)}"


class CommandClient(Protocol):
    def command(self, cmd: str, parameters: Any = None) -> Any: ...

    def query(self, query: str, parameters: Any = None) -> Any: ...


def applied_versions(client: CommandClient, options: DdlOptions) -> dict[int, str]:
    result = client.query(
        f"SELECT version, argMax(checksum, applied_at) FROM {options.table(VERSIONS_TABLE)}"
        " GROUP BY version"
    )
    return {int(v): str(c) for v, c in result.result_rows}


def derived_versions_table_sql(options: DdlOptions) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {options.table(DERIVED_VERSIONS_TABLE)}{options.on_cluster}"
        " (target String, checksum String, applied_at DateTime64(3, 'UTC'))"
        f" ENGINE = {options.engine('ReplacingMergeTree', 'applied_at')} ORDER BY target"
    )


def rebuild_sql(schema: Schema, target: str, options: DdlOptions) -> list[str]:
    """INSERT ... SELECT statements refilling `target` from the live tables it derives from."""
    return [
        derivation_sql(d, options, {})
        for d in (*schema.derived, *schema.views)
        if d.target == target
    ]


def apply_schema(
    client: CommandClient, options: DdlOptions, schema: Schema | None = None
) -> list[str]:
    """Create the database, apply the generic versions it lacks, and (re)build each versioned
    target whose DDL is new or changed; returns what was applied or rebuilt.

    Every statement is IF NOT EXISTS, so a version interrupted halfway is simply applied again.
    An applied generic file whose text changed is an error: files are append-only once applied.
    A versioned target is derivable, so a change drops it, creates it anew and rebuilds it from
    the live `events`; its checksum is recorded last, so a run killed halfway rebuilds again.
    """
    schema = schema or default_schema()
    client.command(create_database_sql(options))
    client.command(versions_table_sql(options))
    client.command(derived_versions_table_sql(options))
    done = applied_versions(client, options)
    applied: list[str] = []
    if any(done.get(v) == c for v, c in PRE_SPEC_LAYOUT.items()):
        client.command(drop_database_sql(options))
        client.command(create_database_sql(options))
        client.command(versions_table_sql(options))
        client.command(derived_versions_table_sql(options))
        done = {}
        applied.append("dropped the pre-spec layout")
    for migration in schema.migrations:
        recorded = done.get(migration.version)
        if recorded is not None:
            if recorded != migration.checksum:
                raise DdlError(
                    f"ClickHouse migration {migration.version:03d}_{migration.name} changed after "
                    f"it was applied to {options.database}; add a new numbered file instead"
                )
            continue
        for stmt in migration_sql(migration, options):
            client.command(stmt)
        client.command(
            f"INSERT INTO {options.table(VERSIONS_TABLE)} (version, name, checksum, applied_at)"
            " VALUES ({v:UInt32}, {n:String}, {c:String}, now64(3))",
            parameters={"v": migration.version, "n": migration.name, "c": migration.checksum},
        )
        applied.append(f"{migration.version:03d}_{migration.name}")
    recorded_targets = {
        str(t): str(c)
        for t, c in client.query(
            f"SELECT target, argMax(checksum, applied_at) FROM"
            f" {options.table(DERIVED_VERSIONS_TABLE)} GROUP BY target"
        ).result_rows
    }
    present = {
        str(r[0])
        for r in client.query(
            "SELECT name FROM system.tables WHERE database = {db:String}",
            parameters={"db": options.database},
        ).result_rows
    }
    for target, checksum in schema.versioned.items():
        if recorded_targets.get(target) == checksum and target in present:
            continue
        for view in schema.views:
            if view.target == target and view.view:
                client.command(
                    f"DROP VIEW IF EXISTS {options.table(view.view)}{options.on_cluster} SYNC"
                )
        client.command(f"DROP TABLE IF EXISTS {options.table(target)}{options.on_cluster} SYNC")
        for stmt in target_sql(schema, target, options):
            client.command(stmt)
        for stmt in rebuild_sql(schema, target, options):
            client.command(stmt)
        client.command(
            f"INSERT INTO {options.table(DERIVED_VERSIONS_TABLE)} (target, checksum, applied_at)"
            " VALUES ({t:String}, {c:String}, now64(3))",
            parameters={"t": target, "c": checksum},
        )
        applied.append(target)
    return applied


def drop_database_sql(options: DdlOptions) -> str:
    return f"DROP DATABASE IF EXISTS {options.db}{options.on_cluster}"


__all__: Sequence[str] = (
    "DdlError",
    "DdlOptions",
    "Derivation",
    "Migration",
    "Schema",
    "apply_schema",
    "build_schema",
    "default_schema",
    "derivation_sql",
    "load_schema",
    "quote_identifier",
    "render",
    "schema_sql",
    "staging_table_sql",
    "validate_identifier",
)
