"""Snapshot folds from the spec: one generic merge fold per stream type.

Import events start an aggregate's state, change and named events merge the columns they
carry, delete events flag it deleted; events of child tables folded into a parent's stream
are kept per child under the child's name (e.g. `order_lines`), so they never overwrite the
parent's fields.
"""

from __future__ import annotations

from strangler.event_store.folds import Fold, merge_fold
from strangler.migration.events import snake
from strangler.spec.models import Aggregate, EstateSpec


def _types(aggregate: Aggregate) -> tuple[set[str], set[str], set[str]]:
    """(import types, delete types, every type) the aggregate emits."""
    events = aggregate.events
    imports = {aggregate.event_type("import")} if events.import_.enabled else set()
    deletes = {aggregate.event_type("delete")} if events.delete.enabled else set()
    every = {*imports, *deletes, *(n.type for n in events.named)}
    if events.change.enabled:
        every.add(aggregate.event_type("change"))
    return imports, deletes, every


def spec_folds(spec: EstateSpec) -> list[Fold]:
    folds = []
    for stream in spec.topics:
        aggregate = spec.aggregate(stream)
        imports, deletes, _ = _types(aggregate)
        children: dict[str, tuple[str, bool]] = {}
        for child in spec.aggregates:
            if child.fold_into != stream:
                continue
            _, child_deletes, every = _types(child)
            key = f"{snake(child.name)}s"
            children.update({t: (key, t in child_deletes) for t in every})
        folds.append(
            merge_fold(
                stream, imports=frozenset(imports), deletes=frozenset(deletes), children=children
            )
        )
    return folds
