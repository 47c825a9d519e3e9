"""The stores the consistency checks cover, named once (light: the CLI imports it at start)."""

from __future__ import annotations

from typing import Literal

System = Literal["event-store", "kafka", "clickhouse", "weaviate"]
SYSTEMS: tuple[System, ...] = ("event-store", "kafka", "clickhouse", "weaviate")
