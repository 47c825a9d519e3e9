"""Step 4: the services answer, the rolled-back days are empty, the neighbours untouched.

Emptiness is proven twice: by the rollback's own per-store counts, and by the consistency
checks (strangler.checks), which must agree with the new state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from strangler.rollback import check_evidence
from strangler.rollback.plan import Plan
from strangler.rollback.services import ANALYTICS, EVENT_STORE, RELAY, SEARCH
from strangler.rollback.stores import day_counts
from strangler.rollback.targets import Targets

KEPT_ON_PURPOSE = {("outbox-relay", "messages")}
"""Kafka keeps published records (retention decides); only the ranges are forgotten."""


@dataclass
class Validation:
    reachable: dict[str, str] = field(default_factory=dict)
    leftovers: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    """day -> service -> store -> items still there (should be empty)."""
    neighbour_changes: dict[str, dict[str, Any]] = field(default_factory=dict)
    after: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    checks_still_finding: dict[str, list[str]] = field(default_factory=dict)
    """day -> consistency checks that still find data of a rolled-back day (should be empty)."""
    checks_report_missing: dict[str, list[str]] = field(default_factory=dict)
    """day -> failing checks that report the rolled-back day missing (evidence, not an error)."""
    neighbour_check_regressions: dict[str, list[str]] = field(default_factory=dict)
    """day -> checks of a neighbour that passed before the rollback and fail now."""
    neighbour_references_dangling: dict[str, list[str]] = field(default_factory=dict)
    """day -> a neighbour's references into the removed days (they resolve again on re-run)."""

    @property
    def ok(self) -> bool:
        return (
            all(v == "ok" for v in self.reachable.values())
            and not self.leftovers
            and not self.neighbour_changes
            and not self.checks_still_finding
            and not self.neighbour_check_regressions
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "reachable": self.reachable,
            "leftovers": self.leftovers,
            "neighbour_changes": self.neighbour_changes,
            "after": self.after,
            "checks_still_finding": self.checks_still_finding,
            "checks_report_missing": self.checks_report_missing,
            "neighbour_check_regressions": self.neighbour_check_regressions,
            "neighbour_references_dangling": self.neighbour_references_dangling,
        }


def _probe(name: str, fn: Any) -> str:
    try:
        fn()
    except Exception as exc:  # reported, not swallowed: validation fails on it
        return f"{type(exc).__name__}: {exc}"
    return "ok"


def reachability(targets: Targets, services: tuple[str, ...]) -> dict[str, str]:
    def pg() -> None:
        with psycopg.connect(targets.postgres_conninfo, connect_timeout=5) as conn:
            conn.execute("SELECT 1")

    def kafka() -> None:
        targets.kafka.admin().list_topics(timeout=10)

    def clickhouse() -> None:
        with targets.clickhouse() as client:
            client.query("SELECT 1")

    def weaviate() -> None:
        with targets.weaviate() as client:
            if not client.is_ready():
                raise RuntimeError("not ready")

    probes = {EVENT_STORE: pg, RELAY: kafka, ANALYTICS: clickhouse, SEARCH: weaviate}
    return {s: _probe(s, probes[s]) for s in services}


def validate(targets: Targets, plan: Plan) -> Validation:
    services = plan.scope.services
    result = Validation(reachable=reachability(targets, services))
    if any(v != "ok" for v in result.reachable.values()):
        return result
    for day in plan.days:
        counts = day_counts(targets, day, services)
        result.after[day] = counts
        left = {
            service: {k: n for k, n in stores.items() if n and (service, k) not in KEPT_ON_PURPOSE}
            for service, stores in counts.items()
        }
        left = {s: v for s, v in left.items() if v}
        if left:
            result.leftovers[day] = left
        outcomes = check_evidence.day_outcomes(targets, day, services)
        if found := check_evidence.still_present(outcomes):
            result.checks_still_finding[day] = found
        result.checks_report_missing[day] = check_evidence.reported_missing(outcomes)
    for day, before in plan.neighbours.items():
        now = day_counts(targets, day, services)
        if now != before:
            result.neighbour_changes[day] = {"before": before, "after": now}
    for day, passed_before in plan.neighbour_checks.items():
        outcomes = check_evidence.day_outcomes(targets, day, services)
        regressed, dangling = check_evidence.regressions(passed_before, outcomes)
        if regressed:
            result.neighbour_check_regressions[day] = regressed
        if dangling:
            result.neighbour_references_dangling[day] = dangling
    return result
