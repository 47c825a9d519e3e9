"""Partition-aware freshness: "yesterday's partition of each daily asset exists by the deadline".

`FreshnessPolicy.time_window` on the assets (set in the asset modules) looks only at the last
materialization, so a backfill of an old day makes a stale asset look fresh; these checks ask
for the newest complete partition instead. Deadline: STRANGLER_FRESHNESS_DEADLINE_CRON (UTC).
The assets are the catalogue's units of the spec's daily partitions (every asset a
consistency check guards).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg

from strangler.checks.catalogue import declared_checks
from strangler.dagster_preview import partition_freshness_checks
from strangler.settings import get_settings
from strangler.spec import EstateSpec, current_spec

FRESHNESS_SENSOR = "partition_freshness_checks"


def daily_assets(spec: EstateSpec) -> list[dg.AssetKey]:
    """The daily assets the catalogue checks, in catalogue order."""
    paths = dict.fromkeys(d.asset for d in declared_checks(spec))
    return [dg.AssetKey(list(p)) for p in paths]


def build_freshness_checks(spec: EstateSpec) -> list[dg.AssetChecksDefinition]:
    with partition_freshness_checks():
        return list(
            dg.build_time_partition_freshness_checks(
                assets=daily_assets(spec),
                deadline_cron=get_settings().freshness_deadline_cron,
                timezone="UTC",
                severity=dg.AssetCheckSeverity.WARN,
            )
        )


def build_freshness_sensor(
    freshness_checks: Sequence[dg.AssetChecksDefinition],
) -> dg.SensorDefinition:
    with partition_freshness_checks():
        return dg.build_sensor_for_freshness_checks(
            freshness_checks=list(freshness_checks),
            name=FRESHNESS_SENSOR,
            minimum_interval_seconds=300,
            default_status=dg.DefaultSensorStatus.STOPPED,
        )


def __getattr__(name: str) -> Any:
    """`freshness_checks` of the settings' spec, built on first use."""
    if name == "freshness_checks":
        return build_freshness_checks(current_spec())
    raise AttributeError(name)
