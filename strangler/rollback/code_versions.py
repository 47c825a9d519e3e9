"""Which partitions were last written by a code version newer than V, from Dagster's records.

Every materialization carries its asset's code version (the `dagster/code_version` tag); a
rollback "of what versions newer than V wrote" takes the days whose latest materialization of
any of the service's assets came from such a version.
"""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg
from packaging.version import InvalidVersion, Version

CODE_VERSION_TAG = "dagster/code_version"
PAGE = 1000


def newer(version: str, than: str) -> bool:
    """PEP 440 comparison when both parse, plain string order otherwise."""
    try:
        return Version(version) > Version(than)
    except InvalidVersion:
        return version > than


def latest_code_versions(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, str]:
    """partition -> code version of its latest materialization (newest records first)."""
    out: dict[str, str] = {}
    cursor: str | None = None
    while True:
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key), limit=PAGE, cursor=cursor
        )
        for record in result.records:
            materialization = record.asset_materialization
            partition = record.partition_key
            if materialization is None or partition is None or partition in out:
                continue
            out[partition] = (materialization.tags or {}).get(CODE_VERSION_TAG, "")
        if not result.has_more:
            return out
        cursor = result.cursor


def days_written_after(
    instance: dg.DagsterInstance, keys: Iterable[dg.AssetKey], than: str
) -> list[str]:
    """Days whose latest materialization of any of `keys` came from a version newer than `than`."""
    days = {
        partition
        for key in keys
        for partition, version in latest_code_versions(instance, key).items()
        if version and newer(version, than)
    }
    return sorted(days)
