"""A rolled-back partition reads Failed in Dagster's partition status, and healthy again after a
re-materialization or an undo (the status the partitions view draws; the browser test in
tests/e2e/test_ui.py looks at the view itself).

On a throwaway Dagster instance with the real definitions: the retraction must go through
Dagster's own status cache, since that is what the UI reads.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

from strangler.partitions import daily_partitions
from strangler.rollback.code_versions import CODE_VERSION_TAG
from strangler.rollback.partition_status import (
    KIND_TAG,
    RETRACTION,
    ROLLBACK_TAG,
    restored_materializations,
    retract_partitions,
)

DAYS = ["2026-11-20", "2026-11-21", "2026-11-22"]
ROLLED_BACK = "2026-11-21"
KEYS = [dg.AssetKey(["event_store", "events"]), dg.AssetKey(["kafka", "documents.events"])]


def _status(instance: dg.DagsterInstance, key: dg.AssetKey) -> tuple[list[str], list[str]]:
    """(materialized, failed) partitions as the asset status cache has them."""
    value = get_and_update_asset_status_cache_value(instance, key, daily_partitions)
    assert value is not None
    return (
        sorted(
            value.deserialize_materialized_partition_subsets(daily_partitions).get_partition_keys()
        ),
        sorted(value.deserialize_failed_partition_subsets(daily_partitions).get_partition_keys()),
    )


def _materialize(instance: dg.DagsterInstance, days: list[str], version: str) -> None:
    for key in KEYS:
        for day in days:
            instance.report_runless_asset_event(
                dg.AssetMaterialization(key, partition=day, tags={CODE_VERSION_TAG: version})
            )


def test_rolled_back_day_reads_failed_until_rematerialized() -> None:
    with dg.instance_for_test() as instance:
        _materialize(instance, DAYS, "3")
        assert all(_status(instance, key) == (DAYS, []) for key in KEYS)

        (run_id,) = retract_partitions(instance, KEYS, [ROLLED_BACK], "req-1", "rollback-run")
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.FAILURE
        assert run.tags[ROLLBACK_TAG] == "req-1" and run.tags[KIND_TAG] == RETRACTION
        assert run.tags["dagster/partition"] == ROLLED_BACK
        failure = instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.RUN_FAILURE
        ).records
        assert "Rolled back by req-1" in str(failure[0].event_log_entry.dagster_event.message)
        assert all(_status(instance, key)[1] == [ROLLED_BACK] for key in KEYS)

        _materialize(instance, [ROLLED_BACK], "4")  # the day migrated again
        assert all(_status(instance, key) == (DAYS, []) for key in KEYS)


def test_undo_restores_the_day_with_its_code_version() -> None:
    with dg.instance_for_test() as instance:
        _materialize(instance, DAYS, "3")
        retract_partitions(instance, KEYS, [ROLLED_BACK], "req-2", "rollback-run")
        assert _status(instance, KEYS[1])[1] == [ROLLED_BACK]

        restored = restored_materializations(instance, KEYS, [ROLLED_BACK], "req-2")
        assert {(m.asset_key, m.partition) for m in restored} == {(k, ROLLED_BACK) for k in KEYS}
        for materialization in restored:
            instance.report_runless_asset_event(materialization)
        assert all(_status(instance, key) == (DAYS, []) for key in KEYS)
        latest = instance.fetch_materializations(KEYS[0], limit=1).records[0]
        assert latest.asset_materialization is not None
        assert latest.asset_materialization.tags[CODE_VERSION_TAG] == "3"
        assert latest.asset_materialization.tags[ROLLBACK_TAG] == "req-2"


def test_nothing_to_retract_creates_no_run() -> None:
    with dg.instance_for_test() as instance:
        assert retract_partitions(instance, KEYS, [], "req-3", "rollback-run") == []
        assert instance.get_runs() == []
