"""Optional multi-tenancy of the search collections: one Weaviate tenant per tenant key.

With STRANGLER_WEAVIATE_MULTI_TENANCY on, a collection whose `search.tenant` names a field
(or `{parent: X}`) is created multi-tenant and each object lives in the tenant its row names:
the field's value, or the tenant of its parent row's object (resolved through the parent's
state, recursively, from the day's events or the event store). A collection without a tenant
key stays single-tenant, searchable in one query. Readers do not consult the setting: they ask
the live collection (`scopes`), so a collection keeps being read the way it was built even when
the setting and the index disagree (that disagreement is reported as schema drift).

Weaviate 1.39 stores references from a multi-tenant collection to a single-tenant one, and
filters on them, but cannot resolve them in a tenant query (weaviate/weaviate#7281): code that
needs such a reference reads it through a filter or through the foreign key property, never
through `return_references`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import weaviate
from weaviate.classes.query import Filter, MetadataQuery
from weaviate.classes.tenants import Tenant

_TENANT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CREATE_CHUNK = 100


def tenant_name(value: Any) -> str:
    """The tenant a tenant key's value names: an integer's decimal digits, or a text of
    letters, digits, `_` and `-` (at most 64, Weaviate's rule for tenant names).

    Anything else is refused rather than coerced: a tenant name is an identifier, and two
    spellings of one key must never become two tenants.
    """
    if isinstance(value, bool) or value is None:
        raise ValueError(f"invalid tenant key {value!r}: not an integer or a name")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        name = str(value)
    elif isinstance(value, str):
        name = value
    else:
        raise ValueError(f"invalid tenant key {value!r}: not an integer or a name")
    if not _TENANT.match(name):
        raise ValueError(
            f"invalid tenant key {value!r}: a tenant name is 1-64 letters, digits, _ or -"
        )
    return name


def is_multi_tenant(collection: Any) -> bool:
    config = collection.config.get()
    return bool(config.multi_tenancy_config and config.multi_tenancy_config.enabled)


def scoped(collection: Any, tenant: str | None) -> Any:
    """The handle that reads and writes `tenant` (the collection itself when tenant is None)."""
    return collection if tenant is None else collection.with_tenant(tenant)


def scopes(client: weaviate.WeaviateClient, name: str) -> Iterator[tuple[str | None, Any]]:
    """(tenant, handle) per tenant of a multi-tenant collection, else (None, collection) once.

    The one loop every reader runs, so a single code path serves both layouts.
    """
    collection = client.collections.get(name)
    if not is_multi_tenant(collection):
        yield None, collection
        return
    for tenant in sorted(collection.tenants.get()):
        yield tenant, collection.with_tenant(tenant)


def ensure_tenants(collection: Any, tenants: Iterable[str]) -> list[str]:
    """Create the tenants the collection lacks (creation is idempotent in Weaviate, so a
    concurrent creator is harmless); returns the ones created."""
    wanted = sorted(set(tenants))
    if not wanted:
        return []
    existing = set(collection.tenants.get())
    missing = [t for t in wanted if t not in existing]
    for start in range(0, len(missing), _CREATE_CHUNK):
        collection.tenants.create([Tenant(name=t) for t in missing[start : start + _CREATE_CHUNK]])
    return missing


def near_vector_all(
    client: weaviate.WeaviateClient,
    name: str,
    vector: list[float],
    limit: int,
    **query: Any,
) -> list[tuple[str | None, Any]]:
    """The `limit` nearest objects over every tenant: each tenant's top `limit`, merged by
    distance. (tenant, object) pairs; a single-tenant collection is one plain query."""
    hits: list[tuple[str | None, Any]] = []
    for tenant, handle in scopes(client, name):
        found = handle.query.near_vector(
            near_vector=vector,
            limit=limit,
            return_metadata=MetadataQuery(distance=True),
            **query,
        ).objects
        hits.extend((tenant, o) for o in found)
    hits.sort(key=lambda h: _distance(h[1]))
    return hits[:limit]


def _distance(obj: Any) -> float:
    distance = obj.metadata.distance if obj.metadata is not None else None
    return float(distance) if distance is not None else float("inf")


@dataclass
class Placement:
    """Where each object of a multi-tenant collection goes: row id -> tenant, or why not."""

    tenants: dict[str, str] = field(default_factory=dict)
    unresolved: dict[str, str] = field(default_factory=dict)


def present(
    client: weaviate.WeaviateClient,
    name: str,
    keys: Iterable[tuple[str | None, UUID]],
    chunk: int = 1_000,
) -> set[tuple[str | None, UUID]]:
    """Which (tenant, uuid) exist in collection `name`.

    In a multi-tenant collection an object counts only in the given tenant (references link
    within one tenant), or in any tenant when none is given; a single-tenant collection ignores
    the tenant.
    """
    wanted = set(keys)
    if not wanted or not client.collections.exists(name):
        return set()
    collection = client.collections.get(name)
    multi = is_multi_tenant(collection)
    live = set(collection.tenants.get()) if multi else set()
    by_scope: dict[str | None, set[UUID]] = {}
    for tenant, u in wanted:
        by_scope.setdefault(tenant if multi else None, set()).add(u)
    found: set[tuple[str | None, UUID]] = set()
    for tenant, ids in by_scope.items():
        if multi and tenant is None:
            handles = [collection.with_tenant(t) for t in sorted(live)]
        elif multi and tenant not in live:
            handles = []
        else:
            handles = [scoped(collection, tenant)]
        hits: set[UUID] = set()
        ordered = sorted(ids, key=str)
        for handle in handles:
            for start in range(0, len(ordered), chunk):
                part = ordered[start : start + chunk]
                hits |= {
                    UUID(str(o.uuid))
                    for o in handle.query.fetch_objects(
                        filters=Filter.by_id().contains_any(part),
                        limit=len(part),
                        return_properties=[],
                    ).objects
                }
        found |= {(t, u) for t, u in wanted if (t if multi else None) == tenant and u in hits}
    return found
