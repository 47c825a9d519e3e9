"""The `live` check on every daily asset: fails on a partition a rollback emptied.

The rollback job reports it failed for the partitions it empties, an undo reports it passed;
materializing the partition runs it again, and it passes because the materialization is newer
than the rollback's mark.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from strangler.dagster_preview import partitioned_checks
from strangler.partitions import build_daily_partitions, log_check_evaluations, run_partition_keys
from strangler.rollback.asset_keys import ALL_SERVICES, asset_keys_for
from strangler.rollback.liveness import Liveness, RollbackMark, liveness
from strangler.spec import EstateSpec, current_spec

LIVE_CHECK = "live"
ROLLED_BACK = "rolled_back"
ROLLBACK_ID = "rollback_id"


def latest_mark(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition: str
) -> RollbackMark | None:
    """The newest rollback/undo observation of the partition."""
    records = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=20
    ).records
    for record in records:
        observation = record.asset_observation
        if observation is None or ROLLED_BACK not in observation.metadata:
            continue
        rollback_id = observation.metadata.get(ROLLBACK_ID)
        return RollbackMark(
            timestamp=record.timestamp,
            rolled_back=bool(observation.metadata[ROLLED_BACK].value),
            rollback_id=str(rollback_id.value) if rollback_id is not None else None,
        )
    return None


def latest_materialization(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition: str
) -> float | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
    ).records
    return records[0].timestamp if records else None


def partition_liveness(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str) -> Liveness:
    return liveness(
        latest_materialization(instance, key, partition), latest_mark(instance, key, partition)
    )


_PAGE = 1_000


def _newest_per_partition(
    fetch: Any, key: dg.AssetKey, partitions: list[str], keep: Any
) -> dict[str, Any]:
    """The newest record `keep` accepts of each partition, paging through the asset's records
    of all the partitions at once (newest first) until each has one or none are left."""
    found: dict[str, Any] = {}
    cursor: str | None = None
    while len(found) < len(partitions):
        page = fetch(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=partitions),
            limit=_PAGE,
            cursor=cursor,
        )
        for record in page.records:
            partition = record.partition_key
            if partition is not None and partition not in found and keep(record):
                found[partition] = record
        if not page.has_more:
            break
        cursor = page.cursor
    return found


def _is_mark(record: Any) -> bool:
    observation = record.asset_observation
    return observation is not None and ROLLED_BACK in observation.metadata


def range_liveness(
    instance: dg.DagsterInstance, key: dg.AssetKey, partitions: list[str]
) -> dict[str, Liveness]:
    """`partition_liveness` of many partitions of one asset with a few paged queries (a range
    run's check: one query per partition and asset costs seconds over years of partitions)."""
    materialized = _newest_per_partition(
        instance.fetch_materializations, key, partitions, lambda _r: True
    )
    marked = _newest_per_partition(instance.fetch_observations, key, partitions, _is_mark)
    out: dict[str, Liveness] = {}
    for partition in partitions:
        record = marked.get(partition)
        mark = None
        if record is not None:
            metadata = record.asset_observation.metadata
            rollback_id = metadata.get(ROLLBACK_ID)
            mark = RollbackMark(
                timestamp=record.timestamp,
                rolled_back=bool(metadata[ROLLED_BACK].value),
                rollback_id=str(rollback_id.value) if rollback_id is not None else None,
            )
        made = materialized.get(partition)
        out[partition] = liveness(made.timestamp if made is not None else None, mark)
    return out


def live_evaluation(key: dg.AssetKey, partition: str, state: Liveness) -> dg.AssetCheckEvaluation:
    """The check's result as an event a job or sensor logs (rollback, undo)."""
    return dg.AssetCheckEvaluation(
        asset_key=key,
        check_name=LIVE_CHECK,
        passed=state.passed,
        partition=partition,
        description=state.description,
        metadata={ROLLBACK_ID: state.rollback_id or ""},
        severity=dg.AssetCheckSeverity.ERROR,
    )


def build_partition_live(spec: EstateSpec) -> dg.AssetChecksDefinition:
    """The `live` check on every daily asset a rollback of the spec's stores can empty."""
    partitions_def = build_daily_partitions(spec)
    with partitioned_checks():
        specs = [
            dg.AssetCheckSpec(
                LIVE_CHECK,
                asset=key,
                description=(
                    "The partition holds data: no rollback emptied it since it was materialized."
                ),
                partitions_def=partitions_def,
            )
            for key in asset_keys_for(ALL_SERVICES, spec)
        ]

    @dg.multi_asset_check(specs=specs, can_subset=True, name="partition_live")
    def partition_live(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        keys = run_partition_keys(context)
        if len(keys) > 1:  # a range run: each partition's result under its own partition
            states = {
                check_key.asset_key: range_liveness(context.instance, check_key.asset_key, keys)
                for check_key in context.selected_asset_check_keys
            }
            log_check_evaluations(
                context,
                [
                    live_evaluation(check_key.asset_key, key, states[check_key.asset_key][key])
                    for key in keys
                    for check_key in sorted(context.selected_asset_check_keys, key=str)
                ],
            )
            return
        partition = keys[0]
        for check_key in sorted(context.selected_asset_check_keys, key=str):
            state = partition_liveness(context.instance, check_key.asset_key, partition)
            yield dg.AssetCheckResult(
                asset_key=check_key.asset_key,
                check_name=LIVE_CHECK,
                passed=state.passed,
                description=state.description,
                metadata={ROLLBACK_ID: state.rollback_id or ""},
                severity=dg.AssetCheckSeverity.ERROR,
            )

    return partition_live


def __getattr__(name: str) -> Any:
    """`partition_live` of the settings' spec, built on first use."""
    if name == "partition_live":
        return build_partition_live(current_spec())
    raise AttributeError(name)
