"""What the pure stages need from Kafka: client factories, whoever provides them.

`strangler.resources.kafka.KafkaResource` satisfies it in Dagster; tests and benches may pass
anything with the same methods. Keeps the migration, analytics and search packages free of
Dagster.
"""

from __future__ import annotations

from typing import Any, Protocol

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient


class KafkaClients(Protocol):
    def topic(self, name: str) -> str: ...

    def producer(self, **overrides: Any) -> Producer: ...

    def consumer(self, group_id: str, **overrides: Any) -> Consumer: ...

    def admin(self, **overrides: Any) -> AdminClient: ...
