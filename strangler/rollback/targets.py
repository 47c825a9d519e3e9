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
from strangler.rollback.services import ANALYTICS, SEARCH
from strangler.search.schema import CollectionNames
from strangler.search.sink import CONSUMER_GROUP as SEARCH_GROUP

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

    @property
    def topics(self) -> list[str]:
        return [self.kafka.topic(t) for t in TOPICS.values()]

    @property
    def progress_topic(self) -> str:
        return self.kafka.topic(PROGRESS_TOPIC)
