"""Kafka: factories for confluent-kafka producers, consumers and admin clients."""

from __future__ import annotations

from typing import Any

import dagster as dg
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient


class KafkaResource(dg.ConfigurableResource):
    """Any librdkafka setting passes through `extra_config` (SSL paths, tuning, ...)."""

    bootstrap_servers: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    topic_prefix: str = ""
    extra_config: dict[str, str] = {}

    def base_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            config["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            config["sasl.username"] = self.sasl_username
        if self.sasl_password:
            config["sasl.password"] = self.sasl_password
        config.update(self.extra_config)
        return config

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def producer(self, **overrides: Any) -> Producer:
        return Producer(
            {**self.base_config(), "acks": "all", "enable.idempotence": True, **overrides}
        )

    def consumer(self, group_id: str, **overrides: Any) -> Consumer:
        return Consumer(
            {
                **self.base_config(),
                "group.id": group_id,
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                **overrides,
            }
        )

    def admin(self, **overrides: Any) -> AdminClient:
        return AdminClient({**self.base_config(), **overrides})
