"""The check catalogue: every consistency check declared once, with the function that runs it.

Each store's checks form one group (`StoreChecks`): the checks it yields (name, blocking,
what they compare), its scope (the whole partition, one topic, one collection) and its units
as the estate spec gives them, and one evaluator that runs the group's plain check functions
on one unit. The Dagster asset checks (`checks.consistency`), the `strangler check` runner and
the reconciliation sensor are all generated from this table, so they cannot drift apart.
Pure: no Dagster import (the Dagster layer turns `AssetPath`s into asset keys).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from strangler.analytics.ddl import DdlOptions
from strangler.checks.outcome import CheckOutcome
from strangler.checks.systems import SYSTEMS, System
from strangler.migration.source import REFERENCE
from strangler.settings import Settings
from strangler.spec import EstateSpec, current_spec

if TYPE_CHECKING:
    import psycopg
    import weaviate

    from strangler.checks.kafka import ConsumerFactory
    from strangler.search.schema import CollectionNames

Scope = Literal["partition", "topic", "collection"]
AssetPath = tuple[str, ...]

EVENT_STORE_ASSET: AssetPath = ("event_store", "events")
CLICKHOUSE_ASSET: AssetPath = ("clickhouse", "events")


def kafka_asset(topic: str) -> AssetPath:
    return ("kafka", topic)


def weaviate_asset(aggregate: str) -> AssetPath:
    return ("weaviate", aggregate)


def _default_names() -> CollectionNames:
    from strangler.search.schema import CollectionNames

    return CollectionNames()


@dataclass
class CheckTargets:
    """Where each store lives; prefixes and database names keep tests and deployments apart."""

    postgres_conninfo: str
    monolith_conninfo: str | None = None
    """The monolith, when it is not the estate's database (read only)."""
    consumer_factory: ConsumerFactory | None = None
    topic_prefix: str = ""
    clickhouse: Callable[[], AbstractContextManager[Any]] | None = None
    clickhouse_ddl: DdlOptions = field(default_factory=DdlOptions)
    weaviate: Callable[[], AbstractContextManager[weaviate.WeaviateClient]] | None = None
    collection_names: CollectionNames = field(default_factory=_default_names)
    dimension: Callable[[], int | None] = lambda: None
    thresholds: Settings = field(default_factory=Settings)
    kafka_idle_timeout_s: float = 30.0
    spec: EstateSpec | None = None
    """The estate whose stores are checked (default: the settings' spec)."""

    @property
    def estate(self) -> EstateSpec:
        return self.spec if self.spec is not None else current_spec()


@dataclass(frozen=True)
class Check:
    """One check: its Dagster name (the asset says the store) and what it compares."""

    system: System
    name: str
    blocking: bool
    description: str
    function: str
    """The plain function whose outcome this is, as `module.name` (the group's evaluator
    calls it; named, not imported, so the catalogue loads without any store's client)."""

    def resolve(self) -> Callable[..., Any]:
        module, _, name = self.function.rpartition(".")
        return getattr(import_module(module), name)  # type: ignore[no-any-return]

    @property
    def outcome_name(self) -> str:
        """The name its `CheckOutcome`s carry: `<store>.<check>`, e.g. `kafka.keys_ordered`."""
        return f"{self.system.replace('-', '_')}.{self.name}"


@dataclass(frozen=True)
class Unit:
    """What one evaluation covers: the whole partition, one topic or one collection."""

    system: System
    asset: AssetPath
    subject: str = ""
    """The stream type (topic) or aggregate (collection); empty for the whole partition."""


Evaluator = Callable[[CheckTargets, "psycopg.Connection[Any]", Unit, str], list[CheckOutcome]]


@dataclass(frozen=True)
class StoreChecks:
    """The checks of one store, the units the spec gives them and the function running them."""

    system: System
    scope: Scope
    asset_pattern: str
    """The assets it checks, in words (e.g. `kafka/<topic>`)."""
    checks: tuple[Check, ...]
    units: Callable[[EstateSpec, bool], list[Unit]]
    """(spec, reference data?) -> the units to check."""
    evaluate: Evaluator
    """Runs every check of the group on one unit of one partition."""

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)


# -- units from the spec ---------------------------------------------------------------------


def _aggregates(spec: EstateSpec, reference: bool) -> list[Any]:
    return spec.reference if reference else spec.daily


def _event_store_units(spec: EstateSpec, reference: bool) -> list[Unit]:
    return [Unit("event-store", ("event_store", REFERENCE) if reference else EVENT_STORE_ASSET)]


def stream_topics(spec: EstateSpec, reference: bool = False) -> dict[str, str]:
    """Stream type -> topic of the daily (or reference) aggregates, in spec order."""
    types = dict.fromkeys(a.stream_type for a in _aggregates(spec, reference))
    return {t: spec.topics[t] for t in types}


def _kafka_units(spec: EstateSpec, reference: bool) -> list[Unit]:
    return [
        Unit("kafka", kafka_asset(topic), stream)
        for stream, topic in stream_topics(spec, reference).items()
    ]


def _clickhouse_units(spec: EstateSpec, reference: bool) -> list[Unit]:
    if not reference:
        return [Unit("clickhouse", CLICKHOUSE_ASSET)]
    return [Unit("clickhouse", ("clickhouse", REFERENCE))] if spec.reference else []


def _weaviate_units(spec: EstateSpec, reference: bool) -> list[Unit]:
    wanted = {a.name for a in _aggregates(spec, reference)}
    return [
        Unit("weaviate", weaviate_asset(a.name), a.name)
        for a in spec.searchable
        if a.name in wanted
    ]


# -- evaluators: the plain check functions with the targets' clients and thresholds ----------


def _event_store(
    targets: CheckTargets, conn: psycopg.Connection[Any], unit: Unit, partition_key: str
) -> list[CheckOutcome]:
    from strangler.checks import event_store as es_checks
    from strangler.migration.partition_run import source_session

    t = targets.thresholds
    sample = t.check_sample_keys
    with source_session(targets.monolith_conninfo or targets.postgres_conninfo) as monolith:
        accounted = es_checks.check_monolith_accounted(
            conn, partition_key, sample=sample, spec=targets.estate, monolith=monolith
        )
    outcomes = [
        accounted,
        es_checks.check_store_versions(conn, partition_key, sample=sample),
        es_checks.check_failed_entities(
            conn, partition_key, max_unresolved=t.check_max_unresolved_failed, sample=sample
        ),
    ]
    conn.rollback()
    return outcomes


def _kafka(
    targets: CheckTargets, conn: psycopg.Connection[Any], unit: Unit, partition_key: str
) -> list[CheckOutcome]:
    from strangler.checks import kafka as kafka_checks

    if targets.consumer_factory is None:
        raise RuntimeError("no Kafka consumer factory configured")
    t = targets.thresholds
    topics = targets.estate.topics
    day = kafka_checks.check_kafka_day(
        conn,
        targets.consumer_factory,
        partition_key,
        topic_prefix=targets.topic_prefix,
        aggregate_types=[unit.subject],
        max_freshness_lag_s=t.check_max_freshness_lag_s,
        start_depth=t.check_start_depth,
        leaf_rows=t.check_leaf_rows,
        sample=t.check_sample_keys,
        idle_timeout_s=targets.kafka_idle_timeout_s,
        spec_topics=topics,
    )
    lag = kafka_checks.check_consumer_lag(
        conn,
        partition_key,
        topics=kafka_checks.topics_for(targets.topic_prefix, [unit.subject], topics),
        max_lag=t.check_max_consumer_lag,
        sample=t.check_sample_keys,
    )
    return [day.matches, day.ordered, day.fresh, lag]


def _clickhouse(
    targets: CheckTargets, conn: psycopg.Connection[Any], unit: Unit, partition_key: str
) -> list[CheckOutcome]:
    from strangler.checks import clickhouse as ch_checks

    if targets.clickhouse is None:
        raise RuntimeError("no ClickHouse client configured")
    t = targets.thresholds
    return ch_checks.check_clickhouse_partition(
        targets.estate,
        conn,
        targets.clickhouse,
        partition_key,
        ddl=targets.clickhouse_ddl,
        max_freshness_lag_s=t.check_max_freshness_lag_s,
        start_depth=t.check_start_depth,
        leaf_rows=t.check_leaf_rows,
        sample=t.check_sample_keys,
    )


def _weaviate(
    targets: CheckTargets, conn: psycopg.Connection[Any], unit: Unit, partition_key: str
) -> list[CheckOutcome]:
    from strangler.checks import weaviate as wv_checks

    if targets.weaviate is None:
        raise RuntimeError("no Weaviate client configured")
    t = targets.thresholds
    with targets.weaviate() as client:
        return wv_checks.check_weaviate_partition(
            targets.estate,
            conn,
            client,
            partition_key,
            names=targets.collection_names,
            aggregates=[unit.subject],
            dimension=targets.dimension(),
            max_freshness_lag_s=t.check_max_freshness_lag_s,
            sample=t.check_sample_keys,
        )


# -- the catalogue -----------------------------------------------------------------------------

CATALOGUE: tuple[StoreChecks, ...] = (
    StoreChecks(
        "event-store",
        "partition",
        "event_store/events",
        (
            Check(
                "event-store",
                "monolith_accounted",
                True,
                "Every monolith row of the partition (every table of the spec) has events in the"
                " event store or an unresolved failed_entities row.",
                "strangler.checks.event_store.check_monolith_accounted",
            ),
            Check(
                "event-store",
                "versions_ordered",
                True,
                "Per aggregate, versions in append (position) order are 1..n: no gap, duplicate"
                " or swap.",
                "strangler.checks.event_store.check_store_versions",
            ),
            Check(
                "event-store",
                "failed_entities_bounded",
                False,
                "Unresolved failed_entities of the partition stay under"
                " STRANGLER_CHECK_MAX_UNRESOLVED_FAILED.",
                "strangler.checks.event_store.check_failed_entities",
            ),
        ),
        _event_store_units,
        _event_store,
    ),
    StoreChecks(
        "kafka",
        "topic",
        "kafka/<topic>",
        (
            Check(
                "kafka",
                "matches_event_store",
                True,
                "The partition's events of the topic's stream and its records in the recorded"
                " offset ranges (read_committed) match by count and per-bucket id hash sums.",
                "strangler.checks.kafka.check_kafka_day",
            ),
            Check(
                "kafka",
                "keys_ordered",
                True,
                "Per key (aggregate id), offsets ascend with aggregate versions.",
                "strangler.checks.kafka.check_kafka_day",
            ),
            Check(
                "kafka",
                "fresh",
                False,
                "The newest event time of the partition here is within"
                " STRANGLER_CHECK_MAX_FRESHNESS_LAG_S of the event store's.",
                "strangler.checks.kafka.check_kafka_day",
            ),
            Check(
                "kafka",
                "consumer_lag",
                False,
                "Each consumer group's lag on the topic is at most"
                " STRANGLER_CHECK_MAX_CONSUMER_LAG.",
                "strangler.checks.kafka.check_consumer_lag",
            ),
        ),
        _kafka_units,
        _kafka,
    ),
    StoreChecks(
        "clickhouse",
        "partition",
        "clickhouse/events",
        (
            Check(
                "clickhouse",
                "matches_event_store",
                False,
                "The partition's event ids in the events table match the event store's (count and"
                " per-bucket id hash sums).",
                "strangler.checks.clickhouse.check_clickhouse_partition",
            ),
            Check(
                "clickhouse",
                "known_aggregates",
                False,
                "Every events-table row of the partition belongs to an aggregate the event store"
                " knows.",
                "strangler.checks.clickhouse.check_clickhouse_partition",
            ),
            Check(
                "clickhouse",
                "fresh",
                False,
                "The newest event time of the partition here is within"
                " STRANGLER_CHECK_MAX_FRESHNESS_LAG_S of the event store's.",
                "strangler.checks.clickhouse.check_clickhouse_partition",
            ),
            Check(
                "clickhouse",
                "views_match_rebuild",
                False,
                "Every derived table and view target of the spec's analytics folder holds, for the"
                " partition, what its SELECT gives over the partition's events.",
                "strangler.checks.clickhouse.check_clickhouse_partition",
            ),
            Check(
                "clickhouse",
                "current_state",
                False,
                "Per aggregate, the current-state table's rows of the partition (latest version,"
                " deletes hidden) are the event store's live rows (count and key hashes).",
                "strangler.checks.clickhouse.check_clickhouse_partition",
            ),
        ),
        _clickhouse_units,
        _clickhouse,
    ),
    StoreChecks(
        "weaviate",
        "collection",
        "weaviate/<aggregate>",
        (
            Check(
                "weaviate",
                "matches_event_store",
                False,
                "Every aggregate of the collection created in the partition (not parked) is an"
                " object of the partition, and no stale object remains.",
                "strangler.checks.weaviate.check_weaviate_partition",
            ),
            Check(
                "weaviate",
                "references_resolve",
                False,
                "No orphan objects; every reference points to an existing object (or to one"
                " failed_entities records as absent).",
                "strangler.checks.weaviate.check_weaviate_partition",
            ),
            Check(
                "weaviate",
                "vectors_complete",
                False,
                "Every object of the partition has a finite, non-zero vector of the model's size.",
                "strangler.checks.weaviate.check_weaviate_partition",
            ),
            Check(
                "weaviate",
                "fresh",
                False,
                "The newest event time of the partition's objects is within"
                " STRANGLER_CHECK_MAX_FRESHNESS_LAG_S of the event store's.",
                "strangler.checks.weaviate.check_weaviate_partition",
            ),
        ),
        _weaviate_units,
        _weaviate,
    ),
)
"""Every consistency check, grouped by store, in the order the runner runs them."""


def store_checks(system: System) -> StoreChecks:
    return next(s for s in CATALOGUE if s.system == system)


def all_checks() -> list[Check]:
    return [c for s in CATALOGUE for c in s.checks]


@dataclass(frozen=True)
class DeclaredCheck:
    """One check on one asset: what the Dagster layer declares and the runner reports."""

    asset: AssetPath
    check: Check
    unit: Unit


def declared_checks(
    spec: EstateSpec, systems: Sequence[System] = SYSTEMS, *, reference: bool = False
) -> list[DeclaredCheck]:
    """Every (asset, check) pair of the spec's daily (or reference) partitions."""
    return [
        DeclaredCheck(unit.asset, check, unit)
        for group in CATALOGUE
        if group.system in systems
        for unit in group.units(spec, reference)
        for check in group.checks
    ]


def units_of(spec: EstateSpec, system: System, partition_key: str) -> list[Unit]:
    return store_checks(system).units(spec, partition_key == REFERENCE)


@dataclass(frozen=True)
class DagsterCheck:
    """A check Dagster evaluates itself rather than the runner (listed so the docs have all)."""

    name: str
    assets: str
    blocking: bool
    description: str
    defined_in: str


DAGSTER_CHECKS: tuple[DagsterCheck, ...] = (
    DagsterCheck(
        "live",
        "every partitioned asset a rollback empties",
        False,
        "Fails on a partition a rollback emptied, until it is materialized again or the rollback"
        " undone.",
        "strangler.checks.partition_live",
    ),
    DagsterCheck(
        "freshness_check",
        "every asset the catalogue checks",
        False,
        "The newest complete partition exists by STRANGLER_FRESHNESS_DEADLINE_CRON (WARN).",
        "strangler.checks.freshness",
    ),
    DagsterCheck(
        "schema_unchanged",
        "monolith/<table> (each table of the spec)",
        False,
        "The monolith table has the columns the first migration recorded: an added column warns,"
        " a dropped or retyped one fails.",
        "strangler.checks.source_drift",
    ),
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def catalogue_markdown() -> str:
    """The catalogue as the Markdown tables of docs/checks.md (a test keeps the doc current)."""
    lines = [
        "| store | check | blocking | scope | asset | compares | function |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for group in CATALOGUE:
        for c in group.checks:
            lines.append(
                f"| {group.system} | `{c.name}` | {'yes' if c.blocking else 'no'} | {group.scope}"
                f" | `{group.asset_pattern}` | {_cell(c.description)} | `{c.function}` |"
            )
    lines += [
        "",
        "| check | asset | blocking | what it says | defined in |",
        "| --- | --- | --- | --- | --- |",
    ]
    for d in DAGSTER_CHECKS:
        lines.append(
            f"| `{d.name}` | {d.assets} | {'yes' if d.blocking else 'no'} | {_cell(d.description)}"
            f" | `{d.defined_in}` |"
        )
    return "\n".join(lines) + "\n"


DOC_BEGIN, DOC_END = "<!-- catalogue:begin -->", "<!-- catalogue:end -->"


def write_docs(path: Path) -> bool:
    """Replace the generated table between the markers of `path`; True when it changed."""
    text = path.read_text(encoding="utf-8")
    head, rest = text.split(DOC_BEGIN, 1)
    _old, tail = rest.split(DOC_END, 1)
    new = f"{head}{DOC_BEGIN}\n{catalogue_markdown()}{DOC_END}{tail}"
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


if __name__ == "__main__":
    import sys

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/checks.md")
    print(f"{target}: {'updated' if write_docs(target) else 'already current'}")
