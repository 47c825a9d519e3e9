"""Fold functions: an aggregate's state as a plain dict, rebuilt from its events.

States hold JSON types only (string keys, no tuples or datetimes), so a snapshot stored as
jsonb and read back folds on exactly like the in-memory state: load() with snapshots equals a
full replay.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from strangler.event_store.model import RecordedEvent

State = dict[str, Any]
Apply = Callable[[State, RecordedEvent], State]


@dataclass(frozen=True, slots=True)
class Fold:
    """How to rebuild one aggregate type; bump ``version`` when ``apply`` changes meaning,
    so snapshots written by the old fold are ignored instead of trusted."""

    aggregate_type: str
    apply: Apply
    version: int = 1

    def initial(self, aggregate_id: str) -> State:
        return {"id": aggregate_id}


def merge_fold(
    aggregate_type: str,
    *,
    imports: frozenset[str],
    deletes: frozenset[str],
    children: dict[str, tuple[str, bool]] | None = None,
    version: int = 2,
) -> Fold:
    """A fold that needs no code per aggregate: the state is the merge of what events carry.

    `imports` start the state (and undelete it), `deletes` flag it deleted, any other event
    merges its payload. `children` maps a folded child's event types to (collection key,
    is-delete): those events go into `state[key][payload id]` instead of the top level, so a
    child's fields never overwrite the parent's.
    """
    nested = children or {}

    def apply(state: State, event: RecordedEvent) -> State:
        at = event.occurred_at.isoformat()
        if event.event_type in nested:
            key, is_delete = nested[event.event_type]
            items = dict(state.get(key, {}))
            child = str(event.metadata.get("source_id", event.event_id))
            if is_delete:
                items.pop(child, None)
            else:
                items[child] = {**items.get(child, {}), **event.payload}
            return {**state, key: items, "updated_at": at}
        if event.event_type in deletes:
            return {**state, "deleted": True, "updated_at": at}
        merged = {**state, **event.payload, "updated_at": at}
        if event.event_type in imports:
            merged.setdefault("imported_at", at)
            merged["deleted"] = False
        return merged

    return Fold(aggregate_type, apply, version)


DEFAULT_FOLDS: tuple[Fold, ...] = ()
"""Folds come from the estate spec (`strangler.migration.folds.spec_folds`)."""
