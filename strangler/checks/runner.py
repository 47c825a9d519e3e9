"""Run the catalogue's checks of chosen systems for one partition, with plain clients (CLI,
sensors, rollback, tests)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import psycopg

from strangler.checks.catalogue import CheckTargets, Unit, store_checks, units_of
from strangler.checks.outcome import CheckOutcome
from strangler.checks.systems import SYSTEMS, System

log = logging.getLogger(__name__)


def _error_outcome(unit: Unit, partition_key: str, exc: BaseException) -> CheckOutcome:
    """A check that could not run is a failed check, with the error as its culprit."""
    return CheckOutcome(
        name=f"{unit.system.replace('-', '_')}.runnable",
        system=unit.system,
        partition_key=partition_key,
        passed=False,
        description=f"The {unit.system} checks of {'/'.join(unit.asset)} could not run.",
        target=unit.subject,
        offending=[f"{type(exc).__name__}: {exc}"[:500]],
        asset=unit.asset,
    )


def run_unit(
    targets: CheckTargets, conn: psycopg.Connection[Any], unit: Unit, partition_key: str
) -> list[CheckOutcome]:
    """Every check of one unit; a store that cannot be reached fails the unit's `runnable`."""
    try:
        outcomes = store_checks(unit.system).evaluate(targets, conn, unit, partition_key)
    except Exception as exc:  # reported as a failed check, never swallowed
        log.exception("%s checks of %s could not run", "/".join(unit.asset), partition_key)
        conn.rollback()
        return [_error_outcome(unit, partition_key, exc)]
    for o in outcomes:
        o.asset = unit.asset
    return outcomes


def run_partition(
    targets: CheckTargets, partition_key: str, systems: Sequence[System] = SYSTEMS
) -> list[CheckOutcome]:
    """Every check of the chosen systems for one partition, unit by unit (see the catalogue)."""
    spec = targets.estate
    out: list[CheckOutcome] = []
    with psycopg.connect(targets.postgres_conninfo) as conn:
        for system in SYSTEMS:
            if system not in systems:
                continue
            for unit in units_of(spec, system, partition_key):
                out += run_unit(targets, conn, unit, partition_key)
    sample = targets.thresholds.check_sample_keys
    for o in out:
        o.offending = o.offending[:sample]
    return out


def run_range(
    targets: CheckTargets, partition_keys: Sequence[str], systems: Sequence[System] = SYSTEMS
) -> list[CheckOutcome]:
    return [o for pk in partition_keys for o in run_partition(targets, pk, systems)]
