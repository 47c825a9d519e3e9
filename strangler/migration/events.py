"""Monolith rows -> domain events, as the spec declares them, with deterministic ids.

Each row is one aggregate stream (or, with `fold_into`, part of its parent's). A row yields:
the import event (the row's state, at its time: honest, no invented history); each named
event whose `when` holds, once per distinct value of its `identity` columns; a change event
with the changed fields when a migrated row's state moved; and a delete event when the row
is soft-deleted or gone. Each id is uuid5(table, key, change), so re-running a window
appends nothing twice while a late edit appends exactly the new change.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from strangler.event_store.model import NewEvent, event_id_for
from strangler.migration.source import REFERENCE, aggregate_id, key_of
from strangler.spec.models import Aggregate, EstateSpec, FieldSource, JsonKind, SqlField
from strangler.spec.types import to_json


class UnmappableValue(ValueError):
    def __init__(self, column: str, exc: Exception) -> None:
        self.column = column
        super().__init__(f"{column}: {exc}")


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def topic_for(spec: EstateSpec, prefix: str = "") -> Any:
    """The outbox topic of an event: its aggregate's topic, behind the settings' prefix."""
    topics = spec.topics

    def topic(event: NewEvent) -> str:
        return f"{prefix}{topics[event.aggregate_type]}"

    return topic


Plan = tuple[tuple[str, str, JsonKind | None], ...]
"""A payload compiled once per event declaration: (field, row key, JSON kind override)."""


def payload_plan(aggregate: Aggregate, fields: dict[str, FieldSource], prefix: str) -> Plan:
    """Where each payload field comes from in an extraction row, resolved once, not per row."""
    plan: list[tuple[str, str, JsonKind | None]] = []
    for name, source in fields.items():
        if isinstance(source, SqlField):
            plan.append((name, f"__f_{prefix}_{name}", None))
        else:
            rules = aggregate.columns.get(source)
            plan.append((name, source, rules.as_ if rules else None))
    return tuple(plan)


def _convert(row: Mapping[str, Any], key: str, kind: JsonKind | None) -> Any:
    try:
        return to_json(row[key], kind)
    except (TypeError, ValueError) as exc:
        raise UnmappableValue(key, exc) from exc


def row_state(aggregate: Aggregate, row: Mapping[str, Any]) -> dict[str, Any]:
    """Every carried column of the row as event JSON (the generic payload)."""
    excluded = set(aggregate.source.exclude)
    kinds = {c: r.as_ for c, r in aggregate.columns.items()}
    return {
        c: _convert(row, c, kinds.get(c))
        for c in row
        if not c.startswith("__") and c not in excluded
    }


def _payload(
    row: Mapping[str, Any], plan: Plan | None, state: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    if plan is None:
        return dict(state())
    return {name: _convert(row, key, kind) for name, key, kind in plan}


def _identity(row: Mapping[str, Any], columns: list[str]) -> str:
    return "".join(f":{to_json(row[c])}" for c in columns)


def is_soft_deleted(aggregate: Aggregate, row: Mapping[str, Any]) -> bool:
    column = aggregate.source.soft_delete
    return column is not None and row.get(column) not in (None, False)


class EventBuilder:
    """Builds the events of one aggregate's rows for one partition."""

    def __init__(self, aggregate: Aggregate, partition_key: str, now: datetime) -> None:
        self.aggregate = aggregate
        self.partition_key = partition_key
        self.now = now
        self._stream_link = (
            aggregate.parent(aggregate.fold_into).columns if aggregate.fold_into else None
        )
        events = aggregate.events

        def plan(fields: dict[str, FieldSource] | None, prefix: str) -> Plan | None:
            return payload_plan(aggregate, fields, prefix) if fields is not None else None

        self._import_plan = plan(events.import_.fields, "import")
        self._change_plan = plan(events.change.fields, "change")
        self._delete_plan = plan(events.delete.fields, "delete")
        self._named_plans = [plan(n.fields, str(i)) for i, n in enumerate(events.named)]

    def metadata(self, row_id: str) -> dict[str, Any]:
        meta = {"source_table": self.aggregate.source.table, "source_id": row_id}
        if self.partition_key == REFERENCE:
            meta["partition_key"] = self.partition_key
        else:
            meta["partition_day"] = self.partition_key
        return meta

    def _event(
        self,
        row_id: str,
        row: Mapping[str, Any],
        change: str,
        event_type: str,
        occurred_at: datetime | None,
        payload: dict[str, Any],
        stream_id: str | None = None,
    ) -> NewEvent:
        if stream_id is None:
            stream_id = key_of(row, self._stream_link) if self._stream_link else row_id
        return NewEvent(
            event_id=event_id_for(self.aggregate.source.table, row_id, change),
            aggregate_type=self.aggregate.stream_type,
            aggregate_id=stream_id,
            aggregate_version=0,
            event_type=event_type,
            payload=payload,
            occurred_at=occurred_at or self.now,
            metadata=self.metadata(row_id),
        )

    def _default_at(self, row: Mapping[str, Any]) -> datetime | None:
        part = self.aggregate.partitioning
        column = getattr(part, "time_column", None) or self.aggregate.source.updated_at
        return row.get(column) if column else None

    def row_events(self, row: Mapping[str, Any]) -> list[NewEvent]:
        """Import, named and soft-delete events of a clean row (versions assigned on append)."""
        aggregate, events = self.aggregate, self.aggregate.events
        row_id = aggregate_id(aggregate, row)
        cached: list[dict[str, Any]] = []

        def state() -> dict[str, Any]:
            """The generic payload, built only when an event carries it."""
            if not cached:
                cached.append(row_state(aggregate, row))
            return cached[0]

        out: list[NewEvent] = []
        if events.import_.enabled:
            at = row.get("__at_import") if events.import_.at else self._default_at(row)
            out.append(
                self._event(
                    row_id,
                    row,
                    events.import_.change or "imported",
                    aggregate.event_type("import"),
                    at,
                    _payload(row, self._import_plan, state),
                )
            )
        for index, named in enumerate(events.named):
            if not row.get(f"__when_{index}"):
                continue
            change = (named.change or snake(named.type)) + _identity(row, named.identity)
            out.append(
                self._event(
                    row_id,
                    row,
                    change,
                    named.type,
                    row.get(f"__at_{index}"),
                    _payload(row, self._named_plans[index], state),
                )
            )
        if is_soft_deleted(aggregate, row) and events.delete.enabled:
            out.append(self.delete_event(row_id, row, state))
        return out

    def change_event(self, row: Mapping[str, Any], stored: dict[str, Any]) -> NewEvent | None:
        """The changed fields of a migrated row, or None when its stored state is current."""
        if not self.aggregate.events.change.enabled:
            return None
        state = row_state(self.aggregate, row)
        changed = {k: v for k, v in state.items() if stored.get(k) != v}
        if not changed:
            return None
        row_id = aggregate_id(self.aggregate, row)
        digest = hashlib.sha1(
            json.dumps([stored, state], sort_keys=True, default=str).encode()
        ).hexdigest()[:20]
        events = self.aggregate.events
        updated_at = self.aggregate.source.updated_at
        if events.change.at:
            at = row.get("__at_change")
        else:
            at = row.get(updated_at) if updated_at else None
        payload = (
            _payload(row, self._change_plan, lambda: changed)
            if self._change_plan is not None
            else changed
        )
        return self._event(
            row_id,
            row,
            f"{events.change.change or 'changed'}:{digest}",
            self.aggregate.event_type("change"),
            at,
            payload,
        )

    def delete_event(
        self,
        row_id: str,
        row: Mapping[str, Any] | None,
        state: Callable[[], dict[str, Any]] | None = None,
        stream_id: str | None = None,
    ) -> NewEvent:
        """The delete event of a row: soft-deleted (`row` given) or gone (`row` None)."""
        events = self.aggregate.events
        at = None
        if row is not None:
            column = self.aggregate.source.soft_delete
            value = row.get(column) if column else None
            at = value if isinstance(value, datetime) else None
        payload: dict[str, Any] = {"id": row_id, "hard_delete": row is None}
        if row is not None and self._delete_plan is not None:
            payload = _payload(row, self._delete_plan, state or (lambda: {}))
        return self._event(
            row_id,
            row or {},
            events.delete.change or "deleted",
            self.aggregate.event_type("delete"),
            at,
            payload,
            stream_id,
        )
