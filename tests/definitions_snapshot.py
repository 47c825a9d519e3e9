"""A whole-definitions snapshot: what a code location offers, as plain JSON-able data.

Asset keys with their dependencies, partitions, group, kinds and code version; check keys with
their blocking flag and partitions; sensors with their type, targets and default status; jobs
with their ops and partitions. Two definitions with equal snapshots offer the same graph to
Dagster (the functions behind them are compared by the tests that run them).
"""

from __future__ import annotations

from typing import Any

import dagster as dg


def partitions_text(partitions: dg.PartitionsDefinition | None) -> str | None:
    """A partitions definition as one stable line (`None`: unpartitioned)."""
    if partitions is None:
        return None
    if isinstance(partitions, dg.TimeWindowPartitionsDefinition):
        return (
            f"time window '{partitions.cron_schedule}' from {partitions.start:%Y-%m-%d}"
            f" {partitions.timezone}, key format {partitions.fmt}, end offset {partitions.end_offset}"
        )
    return f"{type(partitions).__name__}: {partitions}"


def _path(key: dg.AssetKey) -> str:
    return key.to_user_string()


def snapshot(defs: dg.Definitions) -> dict[str, Any]:
    """The snapshot of `defs` (resolved as Dagster resolves them for a code location)."""
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    assets: dict[str, Any] = {}
    for key in sorted(graph.get_all_asset_keys()):
        node = graph.get(key)
        assets[_path(key)] = {
            "deps": sorted(_path(parent) for parent in node.parent_keys),
            "partitions": partitions_text(node.partitions_def),
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "execution": node.execution_type.value,
            "code_version": node.code_version,
        }
    checks: dict[str, Any] = {}
    for check_key in sorted(graph.asset_check_keys, key=lambda k: (_path(k.asset_key), k.name)):
        spec = graph.get_check_spec(check_key)
        checks[f"{_path(check_key.asset_key)}:{check_key.name}"] = {
            "blocking": spec.blocking,
            "partitions": partitions_text(spec.partitions_def),
            "additional_deps": sorted(_path(d.asset_key) for d in spec.additional_deps),
        }
    sensors: dict[str, Any] = {}
    for sensor in sorted(repo.sensor_defs, key=lambda s: s.name):
        sensors[sensor.name] = {
            "type": sensor.sensor_type.value,
            "default_status": sensor.default_status.value,
            "minimum_interval_seconds": sensor.minimum_interval_seconds,
            "jobs": sorted(job.name for job in sensor.jobs) if sensor.has_jobs else [],
        }
    jobs: dict[str, Any] = {}
    for job in sorted(repo.get_all_jobs(), key=lambda j: j.name):
        if job.name.startswith("__"):
            continue  # Dagster's implicit asset job: the assets above already describe it
        jobs[job.name] = {
            "ops": sorted(node.name for node in job.nodes_in_topological_order),
            "partitions": partitions_text(job.partitions_def),
        }
    return {"assets": assets, "checks": checks, "sensors": sensors, "jobs": jobs}
