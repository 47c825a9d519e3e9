"""Step 1: decide which days and services a rollback touches, and count what it removes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

import psycopg

from strangler.rollback import check_evidence
from strangler.rollback.scope import Scope
from strangler.rollback.stores import day_counts
from strangler.rollback.targets import Targets
from strangler.spec.models import Estate


@dataclass
class Plan:
    """Per service, per day: counts of what the rollback removes (and a dry run prints)."""

    scope: Scope
    days: list[str]
    counts: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    """day -> service -> store object -> count."""
    neighbours: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    """The same counts for the day before and after the range: validation compares them."""
    neighbour_checks: dict[str, dict[str, bool]] = field(default_factory=dict)
    """day -> consistency check -> passed, for the neighbours before the rollback."""

    @property
    def total(self) -> int:
        return sum(n for per in self.counts.values() for s in per.values() for n in s.values())

    def to_dict(self) -> dict[str, Any]:
        scope = asdict(self.scope)
        scope["after"] = self.scope.after.isoformat() if self.scope.after else None
        return {
            "scope": scope,
            "days": self.days,
            "counts": self.counts,
            "neighbours": self.neighbours,
            "neighbour_checks": self.neighbour_checks,
            "total": self.total,
        }

    def markdown(self) -> str:
        lines = [
            f"Rollback plan: services {', '.join(self.scope.services)}; days {', '.join(self.days) or 'none'}",
            "",
            "| day | service | store | items |",
            "| --- | --- | --- | ---: |",
        ]
        for day, per in self.counts.items():
            for service, stores in per.items():
                for store, n in stores.items():
                    lines.append(f"| {day} | {service} | {store} | {n} |")
        return "\n".join(lines)


def select_days(
    conninfo: str,
    scope: Scope,
    code_version_days: list[str] | None = None,
    estate: Estate | None = None,
) -> list[str]:
    """The days in scope: the range, else the days migrated after T and/or written by newer code.

    `code_version_days` are the days whose latest materialization came from a code version newer
    than the scope's (read from Dagster by the job: strangler.rollback.code_versions).
    """
    if scope.from_day is not None and scope.to_day is not None:
        start, end = date.fromisoformat(scope.from_day), date.fromisoformat(scope.to_day)
        days_in = [start + timedelta(days=i) for i in range((end - start).days + 1)]
        if estate is not None:  # weekly or monthly partitions: the keys holding those days
            return sorted({estate.partition_start(d).isoformat() for d in days_in})
        return [d.isoformat() for d in days_in]
    days: set[str] | None = None
    if scope.code_version is not None:
        if code_version_days is None:
            raise ValueError(
                "a code-version rollback reads asset code versions from Dagster: run it through"
                " the rollback job (strangler rollback SERVICE VERSION)"
            )
        days = set(code_version_days)
    if scope.after is not None:
        with psycopg.connect(conninfo) as conn:
            rows = conn.execute(
                "SELECT DISTINCT partition_key FROM migration_state.migration_runs"
                " WHERE NOT dry_run AND status <> 'cancelled'"
                " AND coalesce(finished_at, updated_at) > %s",
                (scope.after,),
            ).fetchall()
        after_days = {str(key) for (key,) in rows}
        days = after_days if days is None else days & after_days
    return sorted(days or ())


def build_plan(
    targets: Targets,
    scope: Scope,
    *,
    dry_run: bool = False,
    code_version_days: list[str] | None = None,
) -> Plan:
    """Counts per day and service; unless a dry run, the neighbours' check results too."""
    estate = targets.spec.estate
    plan = Plan(scope, select_days(targets.postgres_conninfo, scope, code_version_days, estate))
    for day in plan.days:
        plan.counts[day] = day_counts(targets, day, scope.services)
    for day in neighbour_days(plan.days, estate):
        plan.neighbours[day] = day_counts(targets, day, scope.services)
        if not dry_run:
            outcomes = check_evidence.day_outcomes(targets, day, scope.services)
            plan.neighbour_checks[day] = check_evidence.passed_keys(outcomes)
    return plan


def neighbour_days(days: list[str], estate: Estate | None = None) -> list[str]:
    """The partitions just outside each contiguous run of `days` (partition keys: days, or
    the first days of weeks or months under the estate's granularity)."""
    inside = set(days)
    out: set[str] = set()
    for day in days:
        d = date.fromisoformat(day)
        before = d - timedelta(days=1)
        after = estate.partition_end(d) if estate else d + timedelta(days=1)
        for n in (estate.partition_start(before) if estate else before, after):
            if n.isoformat() not in inside:
                out.add(n.isoformat())
    return sorted(out)
