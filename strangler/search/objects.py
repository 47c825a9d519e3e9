"""One day's events -> the Weaviate objects they stand for (pure, no I/O).

Every event of an aggregate lives in the partition of the aggregate's creation day, so a day's
events fold into complete objects: the latest payload wins (by aggregate version), Kafka
duplicates (same event id) fold away. Values pass through uncoerced: a value of the wrong
type is Weaviate's to reject, and that rejection is recorded, never hidden by a cast.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from weaviate.util import generate_uuid5

from strangler.migration.kafka_records import EventRecord
from strangler.search.schema import DAY

CREATION_EVENTS = {
    "Customer": {"CustomerRegistered"},
    "Document": {"DocumentUploaded"},
    "OcrPage": {"OcrPageExtracted"},
}
STATE_EVENTS = {
    "Customer": {"CustomerRegistered", "CustomerUpdated"},
    "Document": {"DocumentUploaded"},
    "OcrPage": {"OcrPageExtracted", "OcrPageCorrected"},
}


def object_uuid(aggregate_type: str, aggregate_id: str | int) -> UUID:
    """Deterministic: the same aggregate always lands on the same Weaviate object."""
    return UUID(generate_uuid5(str(aggregate_id), aggregate_type))


def vector_text(aggregate_type: str, properties: Mapping[str, Any]) -> str:
    """The text an object's vector is computed from (also the quality check's query)."""
    if aggregate_type == "Customer":
        parts = [properties.get("name"), properties.get("plan"), properties.get("country")]
        return ", ".join(str(p) for p in parts if p)
    if aggregate_type == "Document":
        title = properties.get("title") or ""
        category = str(properties.get("category") or "").replace("_", " ")
        return f"{title} ({category})" if category else str(title)
    if aggregate_type == "OcrPage":
        return str(properties.get("text") or "")
    raise ValueError(f"no vector text for {aggregate_type!r}")


@dataclass(frozen=True)
class SearchObject:
    aggregate_type: str
    aggregate_id: str
    uuid: UUID
    properties: dict[str, Any]
    references: dict[str, UUID]
    event_ids: tuple[UUID, ...]

    @property
    def text(self) -> str:
        return vector_text(self.aggregate_type, self.properties)


@dataclass(frozen=True)
class Skipped:
    aggregate_type: str
    aggregate_id: str
    reason: str
    event_ids: tuple[UUID, ...]


@dataclass
class DayFold:
    """Accumulates a day's records; `objects()` gives the objects per aggregate type."""

    day: str
    _streams: dict[tuple[str, str], dict[UUID, EventRecord]] = field(default_factory=dict)
    events: int = 0
    duplicates: int = 0

    def add(self, records: Iterable[EventRecord]) -> None:
        for r in records:
            if r.aggregate_type not in CREATION_EVENTS or r.partition_day != self.day:
                continue
            stream = self._streams.setdefault((r.aggregate_type, r.aggregate_id), {})
            if r.event_id in stream:
                self.duplicates += 1
                continue
            stream[r.event_id] = r
            self.events += 1

    def objects(self) -> tuple[dict[str, list[SearchObject]], list[Skipped]]:
        out: dict[str, list[SearchObject]] = {t: [] for t in CREATION_EVENTS}
        skipped: list[Skipped] = []
        for (atype, aid), stream in sorted(self._streams.items(), key=_stream_order):
            records = sorted(stream.values(), key=lambda r: (r.aggregate_version, r.position))
            event_ids = tuple(r.event_id for r in records)
            if not any(r.event_type in CREATION_EVENTS[atype] for r in records):
                skipped.append(
                    Skipped(
                        atype,
                        aid,
                        f"no {sorted(CREATION_EVENTS[atype])} event on {self.day}",
                        event_ids,
                    )
                )
                continue
            out[atype].append(_build(atype, aid, records, self.day, event_ids))
        return out, skipped


def _stream_order(item: tuple[tuple[str, str], Any]) -> tuple[str, int, str]:
    (atype, aid), _ = item
    return (atype, int(aid) if aid.isdigit() else -1, aid)


def _build(
    atype: str, aid: str, records: list[EventRecord], day: str, event_ids: tuple[UUID, ...]
) -> SearchObject:
    state: dict[str, Any] = {}
    status: str | None = None
    for r in records:
        if r.event_type in STATE_EVENTS[atype]:
            state = dict(r.payload)
        elif r.event_type == "DocumentStatusChanged":
            status = r.payload.get("status")
    refs: dict[str, UUID] = {}
    if atype == "Customer":
        props = {
            "customer_id": state.get("customer_id"),
            "name": state.get("name"),
            "plan": state.get("plan"),
            "country": state.get("country"),
        }
    elif atype == "Document":
        props = {
            "document_id": state.get("document_id"),
            "customer_id": state.get("customer_id"),
            "title": state.get("title"),
            "category": state.get("category"),
            "status": status or "uploaded",
            "page_count": state.get("page_count"),
        }
        if state.get("customer_id") is not None:
            refs["customer"] = object_uuid("Customer", state["customer_id"])
    else:
        props = {
            "page_id": state.get("page_id"),
            "document_id": state.get("document_id"),
            "page_number": state.get("page_number"),
            "text": state.get("text"),
            "confidence": state.get("confidence"),
        }
        if state.get("document_id") is not None:
            refs["document"] = object_uuid("Document", state["document_id"])
    props[DAY] = day
    return SearchObject(atype, aid, object_uuid(atype, aid), props, refs, event_ids)
