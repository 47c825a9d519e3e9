"""One sensor tick against given definitions, with the resources the late-data sensor reads."""

from __future__ import annotations

from typing import Any

import dagster as dg


def tick(
    sensor: dg.SensorDefinition,
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    cursor: str | None,
) -> Any:
    """The sensor's evaluation (`SensorExecutionData`: run requests, cursor)."""
    with dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        definitions=defs,
        resources={k: (defs.resources or {})[k] for k in ("postgres", "monolith")},
    ) as ctx:
        return sensor.evaluate_tick(ctx)
