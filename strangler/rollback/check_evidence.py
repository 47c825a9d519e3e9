"""What the consistency checks say about rolled-back days and their neighbours.

A rollback is only valid if the checks agree with the new state: on a rolled-back day the
stores that were emptied hold nothing the checks can find (and upstream checks report the day
missing), and every check of a neighbouring day that passed before still passes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from strangler.checks.catalogue import CheckTargets
from strangler.checks.outcome import CheckOutcome
from strangler.checks.runner import run_partition
from strangler.checks.systems import System
from strangler.rollback.services import ANALYTICS, EVENT_STORE, RELAY, SEARCH
from strangler.rollback.targets import Targets

SYSTEM_OF: dict[str, System] = {
    EVENT_STORE: "event-store",
    RELAY: "kafka",
    ANALYTICS: "clickhouse",
    SEARCH: "weaviate",
}
PRESENCE_CHECKS = {
    "kafka.matches_event_store",
    "clickhouse.matches_event_store",
    "weaviate.matches_event_store",
}
"""Checks whose right-hand count is what the target store holds of the day."""
REFERENCE_CHECKS = {"weaviate.references_resolve", "clickhouse.known_aggregates"}
"""Checks a neighbour fails, by design, when it refers to aggregates created on a removed day."""


def check_targets(targets: Targets) -> CheckTargets:
    return CheckTargets(
        postgres_conninfo=targets.postgres_conninfo,
        monolith_conninfo=targets.monolith_conninfo,
        consumer_factory=targets.kafka.consumer,
        topic_prefix=targets.kafka.topic_prefix,
        clickhouse=targets.clickhouse,
        clickhouse_ddl=targets.ddl,
        weaviate=targets.weaviate,
        collection_names=targets.names,
        kafka_idle_timeout_s=10.0,
        spec=targets.spec,
    )


def systems_of(services: Iterable[str]) -> list[System]:
    wanted = {SYSTEM_OF[s] for s in services}
    return [s for s in SYSTEM_OF.values() if s in wanted]


def day_outcomes(targets: Targets, day: str, services: Sequence[str]) -> list[CheckOutcome]:
    return run_partition(check_targets(targets), day, systems_of(services))


def passed_keys(outcomes: Iterable[CheckOutcome]) -> dict[str, bool]:
    return {o.key: o.passed for o in outcomes}


def still_present(outcomes: Iterable[CheckOutcome]) -> list[str]:
    """Presence checks that still find data of a rolled-back day (or could not run)."""
    return [
        o.summary()
        for o in outcomes
        if (o.name in PRESENCE_CHECKS and o.right_count) or o.name.endswith(".runnable")
    ]


def reported_missing(outcomes: Iterable[CheckOutcome]) -> list[str]:
    """The failing checks that report the rolled-back day missing."""
    return [o.summary() for o in outcomes if not o.passed and o.left_count]


def regressions(
    before: dict[str, bool], after: Iterable[CheckOutcome]
) -> tuple[list[str], list[str]]:
    """Checks of a neighbouring day that passed before the rollback and fail after it.

    Returned as (regressions, dangling): a neighbour's references to aggregates of a removed
    day dangle until that day is re-materialized or the rollback undone; that is reported, not
    counted as damage. Any other regression is.
    """
    failed = [o for o in after if before.get(o.key) and not o.passed]
    dangling = [o.summary() for o in failed if o.name in REFERENCE_CHECKS]
    return [o.summary() for o in failed if o.name not in REFERENCE_CHECKS], dangling
