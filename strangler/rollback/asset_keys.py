"""Which daily assets each rollback service owns (a rollback empties their partitions)."""

import dagster as dg

from strangler.analytics.ddl import build_schema
from strangler.checks.catalogue import (
    EVENT_STORE_ASSET,
    kafka_asset,
    stream_topics,
    weaviate_asset,
)
from strangler.rollback.services import ANALYTICS, EVENT_STORE, RELAY, SEARCH
from strangler.spec import EstateSpec, current_spec

ALL_SERVICES = (EVENT_STORE, RELAY, ANALYTICS, SEARCH)


def asset_keys_for(
    services: tuple[str, ...] | list[str], spec: EstateSpec | None = None
) -> list[dg.AssetKey]:
    """The daily assets of the spec (default: the settings') whose partitions a rollback of
    `services` empties."""
    spec = spec or current_spec()
    paths: list[tuple[str, ...]] = []
    if EVENT_STORE in services:
        paths.append(EVENT_STORE_ASSET)
    if RELAY in services:
        paths += [kafka_asset(t) for t in stream_topics(spec).values()]
    if ANALYTICS in services:
        paths += [("clickhouse", t) for t in build_schema(spec).swapped_tables]
    if SEARCH in services:
        daily = {a.name for a in spec.daily}
        paths += [weaviate_asset(a.name) for a in spec.searchable if a.name in daily]
    return [dg.AssetKey(list(p)) for p in paths]
