"""The Dagster APIs we call knowingly although Dagster 1.13 flags them, and only those.

- Partitioned asset checks (`partitions_def=` on `AssetCheckSpec` / `@asset_check`) are a
  preview in 1.13 with no stable equivalent: without them a check keeps one result for all
  days, and the per-day history the checks exist for is lost.
- `build_time_partition_freshness_checks` / `build_sensor_for_freshness_checks` are
  "superseded" by `FreshnessPolicy`, which only looks at the latest materialization of the
  asset: a backfill of an old day would make a stale asset read fresh. We keep both: the
  policies on the assets, the partition-aware checks beside them.

- `backfill_policy=` on `@asset` / `@multi_asset` is beta in 1.13: without it a backfill of
  five years of days is 1,800 runs, one per partition, and the run overhead dominates.

Resolving `Definitions` (to look a job up by name) also makes Dagster 1.13 warn about its own
internals: it rebuilds each sensor passing its beta `owners` parameter, and reads the deprecated
`OpDefinition.version` of every observable source. Nothing of ours causes either.

Each warning is ignored at its call site by its exact text, so `strangler` prints none of them
while any other warning (or the same one from someone else's code) still shows.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

PARTITIONED_CHECKS = "Specifying a partitions_def on an AssetCheckSpec"
PARTITION_FRESHNESS_CHECKS = "Function `build_time_partition_freshness_checks` is superseded"
FRESHNESS_CHECKS_SENSOR = "Function `build_sensor_for_freshness_checks` is superseded"
SENSOR_OWNERS = "Parameter `owners` of initializer `SensorDefinition.__init__` is currently in beta"
OP_VERSION = "Property `OpDefinition.version` is deprecated"
BACKFILL_POLICY = "Parameter `backfill_policy` of function"


@contextmanager
def partitioned_checks() -> Iterator[None]:
    """Declare partitioned asset checks (a 1.13 preview we depend on) without the warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=re.escape(PARTITIONED_CHECKS), category=dg.PreviewWarning
        )
        yield


@contextmanager
def range_backfills() -> Iterator[None]:
    """Give an asset decorator a backfill policy (a 1.13 beta we depend on) without the warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=re.escape(BACKFILL_POLICY), category=dg.BetaWarning
        )
        yield


@contextmanager
def partition_freshness_checks() -> Iterator[None]:
    """Build the partition-aware freshness checks and their sensor without the warnings."""
    with warnings.catch_warnings():
        for message in (PARTITION_FRESHNESS_CHECKS, FRESHNESS_CHECKS_SENSOR):
            warnings.filterwarnings(
                "ignore", message=re.escape(message), category=dg.SupersessionWarning
            )
        yield


@contextmanager
def resolving_definitions() -> Iterator[None]:
    """Resolve `Definitions` (e.g. `defs.get_job_def`) without Dagster's warnings about itself."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=re.escape(SENSOR_OWNERS), category=dg.BetaWarning)
        warnings.filterwarnings(
            "ignore", message=re.escape(OP_VERSION), category=DeprecationWarning
        )
        yield
