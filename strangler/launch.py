"""Launch partition materializations in the stack's Dagster instance, with live progress.

The CLI and the main job go through Dagster (not around it), so every run shows in the UI.
Progress comes from `migration_state.migration_runs`, which the migrations update per batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
import psycopg
from dagster._core.storage.tags import (  # the tags a range run carries; no public names
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from strangler.checks.partition_live import partition_live
from strangler.resources.factory import build_resources
from strangler.settings import Settings


@dataclass(frozen=True)
class DayRun:
    partition_key: str
    run_id: str
    success: bool
    metadata: dict[str, dict[str, Any]]
    """Per asset key (user string; `<key> <partition>` in a range run): its materialization
    metadata, as plain values."""
    partitions: int = 1
    """Partitions the run materialized (a range run: more than one)."""


def _plain(metadata: dict[str, Any]) -> dict[str, Any]:
    return {k: getattr(v, "value", v) for k, v in metadata.items()}


def _progress(conninfo: str, migration_like: str, keys: Sequence[str]) -> tuple[int, int]:
    """Rows done and rows to do over the runs of these partitions (a range batch's run row is
    keyed `first..last#digest`, so it counts under its first partition)."""
    with psycopg.connect(conninfo, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(processed_items + failed_items), 0), coalesce(sum(total_items), 0)"
            " FROM (SELECT DISTINCT ON (migration, partition_key) * FROM migration_state.migration_runs"
            "       WHERE migration LIKE %s AND split_part(partition_key, '..', 1) = ANY(%s) ORDER BY migration, partition_key, started_at DESC) r",
            (migration_like, list(keys)),
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def runs_of(keys: Sequence[str], per_run: int) -> list[list[str]]:
    """The partition keys split into runs of at most `per_run` consecutive keys."""
    return [list(keys[i : i + per_run]) for i in range(0, len(keys), per_run)]


def per_run(assets: Sequence[dg.AssetsDefinition]) -> int:
    """Partitions per run the assets' backfill policies allow together (1 without a policy:
    an asset that cannot loop over a range gets one run per partition)."""
    limits = []
    for asset in assets:
        policy = asset.backfill_policy
        if policy is None:
            return 1
        limits.append(policy.max_partitions_per_run or 1_000_000)
    return min(limits, default=1)


def materialize_days(
    settings: Settings,
    assets: Sequence[dg.AssetsDefinition],
    keys: Sequence[str],
    instance: dg.DagsterInstance,
    *,
    run_config: dg.RunConfig | dict[str, Any] | None = None,
    progress_of: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    on_day: Callable[[DayRun], None] | None = None,
    tags: dict[str, str] | None = None,
) -> list[DayRun]:
    """Materialize the partitions `keys`, failing fast: a range of them per run where the
    assets' backfill policies allow it (per-partition metadata and check results stay
    intact), else one run per partition.

    Each run also evaluates the assets' `live` checks, so a partition a rollback emptied reads
    as live again once it is re-materialized.
    """
    resources = build_resources(settings)
    selected = [key for asset in assets for key in asset.keys]
    runs: list[DayRun] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(0.5):
            if progress_of and on_progress:
                on_progress(*_progress(resources["postgres"].conninfo(), progress_of, keys))

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        for chunk in runs_of(keys, per_run(assets)):
            one = len(chunk) == 1
            result = dg.materialize(
                [*assets, partition_live],
                selection=selected,
                partition_key=chunk[0] if one else None,
                instance=instance,
                resources=resources,
                run_config=run_config,
                tags={
                    **(tags or {}),
                    **(
                        {}
                        if one
                        else {
                            ASSET_PARTITION_RANGE_START_TAG: chunk[0],
                            ASSET_PARTITION_RANGE_END_TAG: chunk[-1],
                        }
                    ),
                },
                raise_on_error=False,
            )
            metadata: dict[str, dict[str, Any]] = {}
            for event in result.get_asset_materialization_events():
                materialization = event.step_materialization_data.materialization
                name = materialization.asset_key.to_user_string()
                if not one:
                    name = f"{name} {materialization.partition}"
                metadata[name] = _plain(dict(materialization.metadata))
            run = DayRun(
                chunk[0] if one else f"{chunk[0]}..{chunk[-1]}",
                result.run_id,
                result.success,
                metadata,
                len(chunk),
            )
            runs.append(run)
            if on_day:
                on_day(run)
            if not result.success:
                break
    finally:
        stop.set()
        poller.join(2)
        if progress_of and on_progress:
            on_progress(*_progress(resources["postgres"].conninfo(), progress_of, keys))
    return runs
