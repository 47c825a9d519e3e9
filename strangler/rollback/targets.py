"""Where a rollback acts: plain clients and names, so the library runs without Dagster."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strangler.analytics.ddl import DdlOptions
from strangler.analytics.sink import CONSUMER_GROUP as ANALYTICS_GROUP
from strangler.migration.events import TOPICS
from strangler.migration.topics import PROGRESS_TOPIC
from strangler.resources.kafka import KafkaResource
from strangler.search.schema import CollectionNames
from strangler.search.sink import CONSUMER_GROUP as SEARCH_GROUP

ClientFactory = Callable[[], AbstractContextManager[Any]]

SEARCH = "search-service"
ANALYTICS = "analytics-service"
RELAY = "outbox-relay"
EVENT_STORE = "event-store"
SERVICES: tuple[str, ...] = (SEARCH, ANALYTICS, RELAY, EVENT_STORE)
"""Downstream first: the order a rollback executes in."""
ALIASES: dict[str, str] = {
    "weaviate": SEARCH,
    "clickhouse": ANALYTICS,
    "kafka": RELAY,
    "event_store": EVENT_STORE,
    "eventstore": EVENT_STORE,
    "postgres": EVENT_STORE,
}


def resolve_services(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Service names as in service_health (or their aliases, or `all`), in execution order."""
    wanted: set[str] = set()
    for raw in names:
        for name in (n.strip().lower() for n in raw.split(",")):
            if not name:
                continue
            if name == "all":
                wanted.update(SERVICES)
            elif name in SERVICES:
                wanted.add(name)
            elif name in ALIASES:
                wanted.add(ALIASES[name])
            else:
                raise ValueError(
                    f"unknown service {name!r}; use one of {', '.join(SERVICES)}, "
                    f"{', '.join(sorted(ALIASES))} or all"
                )
    if not wanted:
        raise ValueError("no service given; use all to roll back every service")
    return tuple(s for s in SERVICES if s in wanted)


@dataclass
class Targets:
    """The stores of one deployment (tests point these at names of their own)."""

    postgres_conninfo: str
    kafka: KafkaResource
    clickhouse: ClientFactory
    weaviate: ClientFactory
    ddl: DdlOptions = field(default_factory=DdlOptions)
    names: CollectionNames = field(default_factory=CollectionNames)
    consumer_groups: dict[str, str] = field(
        default_factory=lambda: {ANALYTICS: ANALYTICS_GROUP, SEARCH: SEARCH_GROUP}
    )
    snapshot_dir: Path = Path("rollbacks")

    @property
    def topics(self) -> list[str]:
        return [self.kafka.topic(t) for t in TOPICS.values()]

    @property
    def progress_topic(self) -> str:
        return self.kafka.topic(PROGRESS_TOPIC)
