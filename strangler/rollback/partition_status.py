"""What the partitions view shows after a rollback: Failed, then Materialized again.

Dagster's partitions view colours a partition from its asset status cache: Materialized once
any materialization exists, Failed while the latest *planned* materialization of the
partition belongs to a failed run and no materialization followed it. Open-source Dagster
1.13 offers no way to delete a materialization (`wipe_asset_partitions` raises on SQL
storage) nor to report a failure without a run (`report_runless_asset_event` takes no
`AssetMaterializationFailure`). So a rollback records, per day, one run of the emptied assets
that plans their materialization and is reported failed with the rollback's id: the
partition reads Failed, and the run says why. A later materialization (re-migration) clears
it as any retry would; an undo restores the data and records that as a materialization of
each restored partition, so it reads Materialized again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import dagster as dg

from strangler.dagster_preview import resolving_definitions
from strangler.rollback.code_versions import CODE_VERSION_TAG, latest_code_versions

ROLLBACK_TAG = "strangler/rollback_id"
KIND_TAG = "strangler/kind"
RETRACTION = "rollback-retraction"
PARTITION_TAG = "dagster/partition"
MAX_RETRIES_TAG = "dagster/max_retries"


def _asset_job(keys: Iterable[dg.AssetKey]) -> dg.JobDefinition:
    """The global asset job cut down to `keys`, without their checks (nothing is checked)."""
    from strangler.definitions import defs  # the rollback job is part of defs: import late

    with resolving_definitions():
        job = defs.resolve_implicit_global_asset_job_def()
        return job.get_subset(asset_selection=set(keys), asset_check_selection=set())


def retract_partitions(
    instance: dg.DagsterInstance,
    keys: Sequence[dg.AssetKey],
    days: Sequence[str],
    request_id: str,
    rollback_run_id: str,
) -> list[str]:
    """One failed run per day, planning `keys` for that day: the days read Failed.

    Nothing executes: the run is created (which logs the planned materializations) and at once
    reported failed, so no step runs, no run launcher or daemon picks it up, and no retry is
    attempted. Returns the run ids.
    """
    if not keys or not days:
        return []
    job = _asset_job(keys)
    run_ids = []
    for day in days:
        run = instance.create_run_for_job(
            job,
            asset_selection=set(keys),
            tags={
                PARTITION_TAG: day,
                ROLLBACK_TAG: request_id,
                KIND_TAG: RETRACTION,
                MAX_RETRIES_TAG: "0",
            },
        )
        instance.report_run_failed(
            run,
            message=(
                f"Rolled back by {request_id} (run {rollback_run_id}): partition {day} holds no "
                "data until it is re-materialized or the rollback is undone."
            ),
        )
        run_ids.append(run.run_id)
    return run_ids


def restored_materializations(
    instance: dg.DagsterInstance, keys: Sequence[dg.AssetKey], days: Sequence[str], request_id: str
) -> list[dg.AssetMaterialization]:
    """An undo puts the snapshot back: one materialization per restored partition, carrying
    the code version of the materialization it restores (code-version rollbacks read it)."""
    out = []
    for key in keys:
        versions = latest_code_versions(instance, key)
        for day in days:
            tags = {ROLLBACK_TAG: request_id}
            if versions.get(day):
                tags[CODE_VERSION_TAG] = versions[day]
            out.append(
                dg.AssetMaterialization(
                    asset_key=key,
                    partition=day,
                    description=f"Restored from the snapshot of rollback {request_id}.",
                    metadata={"restored_from_rollback": request_id},
                    tags=tags,
                )
            )
    return out
