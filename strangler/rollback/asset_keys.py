"""Which daily assets each rollback service owns (a rollback empties their partitions)."""

import dagster as dg

from strangler.analytics.ddl import default_schema
from strangler.migration.events import TOPICS
from strangler.rollback.services import ANALYTICS, EVENT_STORE, RELAY, SEARCH
from strangler.search.schema import TYPES

ALL_SERVICES = (EVENT_STORE, RELAY, ANALYTICS, SEARCH)


def asset_keys_for(services: tuple[str, ...] | list[str]) -> list[dg.AssetKey]:
    """The daily assets whose partitions a rollback of `services` empties."""
    keys: list[dg.AssetKey] = []
    if EVENT_STORE in services:
        keys.append(dg.AssetKey(["event_store", "events"]))
    if RELAY in services:
        keys += [dg.AssetKey(["kafka", t]) for t in TOPICS.values()]
    if ANALYTICS in services:
        keys += [dg.AssetKey(["clickhouse", t]) for t in default_schema().swapped_tables]
    if SEARCH in services:
        keys += [dg.AssetKey(["weaviate", t]) for t in TYPES]
    return keys
