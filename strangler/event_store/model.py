"""Value types shared by the event store and the code that produces events."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

EVENT_NAMESPACE = uuid.UUID("6f1c5e4a-8d0b-5b8e-9a51-3c2a7e1d9f00")


_NAMESPACE_SHA1 = hashlib.sha1(EVENT_NAMESPACE.bytes, usedforsecurity=False)
_UUID5_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID5_SET = (5 << 76) | (0x8000 << 48)
"""Version 5 and the RFC 4122 variant, set in the hash's first 128 bits as `uuid.uuid5` does."""


def event_id_for(source_table: str, primary_key: str, change: str) -> uuid.UUID:
    """Deterministic event id, so re-running a partition appends nothing twice.

    Equal to ``uuid.uuid5(EVENT_NAMESPACE, "table:key:change")``, twice as fast: the
    namespace is hashed once and the UUID is built from an int (one per event, so it counts).
    """
    digest = _NAMESPACE_SHA1.copy()
    digest.update(f"{source_table}:{primary_key}:{change}".encode())
    value = int.from_bytes(digest.digest()[:16], "big")
    return uuid.UUID(int=(value & _UUID5_CLEAR) | _UUID5_SET)


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be appended; the store assigns position and recorded_at."""

    event_id: uuid.UUID
    aggregate_type: str
    aggregate_id: str
    aggregate_version: int
    event_type: str
    payload: dict[str, Any]
    occurred_at: datetime
    schema_version: int = 1
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored, with its global position."""

    position: int
    event_id: uuid.UUID
    aggregate_type: str
    aggregate_id: str
    aggregate_version: int
    event_type: str
    payload: dict[str, Any]
    occurred_at: datetime
    recorded_at: datetime
    schema_version: int
    metadata: dict[str, Any]
