"""Where a rollback acts: plain clients and names, so the library runs without Dagster."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strangler.analytics.ddl import DdlOptions
from strangler.analytics.sink import CONSUMER_GROUP as ANALYTICS_GROUP
from strangler.migration.topics import PROGRESS_TOPIC
from strangler.resources.kafka import KafkaResource
from strangler.rollback.services import ANALYTICS, SEARCH
from strangler.search.schema import CollectionNames
from strangler.search.sink import CONSUMER_GROUP as SEARCH_GROUP
from strangler.spec import EstateSpec, current_spec

ClientFactory = Callable[[], AbstractContextManager[Any]]


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
    spec: EstateSpec = field(default_factory=current_spec)
    """The estate whose stores these are: its topics and searchable aggregates."""
    monolith_conninfo: str | None = None
    """The monolith, when it is not the estate's database (the event-store checks read it)."""

    @property
    def topics(self) -> list[str]:
        """Every topic of the spec (daily and reference streams), prefixed."""
        return [self.kafka.topic(t) for t in self.spec.topics.values()]

    @property
    def collections(self) -> list[str]:
        """The searchable aggregates, reference targets first (the spec's order)."""
        return [a.name for a in self.spec.searchable]

    @property
    def progress_topic(self) -> str:
        return self.kafka.topic(PROGRESS_TOPIC)
