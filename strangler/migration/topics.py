"""Domain topics: the desired shape, created when missing, drift reported (never changed)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

PROGRESS_TOPIC = "strangler.relay-progress"
"""Compacted; the relay commits its progress here inside each Kafka transaction."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str]


def domain_topic_specs(
    prefix: str,
    *,
    partitions: int,
    replication_factor: int,
    min_insync_replicas: int,
    retention_days: float,
    compaction: bool,
    message_max_bytes: int,
    names: Iterable[str],
) -> list[TopicSpec]:
    """The domain topics `names` (a spec's `topics.values()`), as desired."""
    config = {
        "min.insync.replicas": str(min_insync_replicas),
        "retention.ms": str(int(retention_days * 86_400_000)),
        "cleanup.policy": "compact,delete" if compaction else "delete",
        "max.message.bytes": str(message_max_bytes + 65_536),
    }
    return [
        TopicSpec(f"{prefix}{name}", partitions, replication_factor, dict(config)) for name in names
    ]


def progress_topic_spec(prefix: str, replication_factor: int) -> TopicSpec:
    return TopicSpec(
        f"{prefix}{PROGRESS_TOPIC}",
        1,
        replication_factor,
        {"cleanup.policy": "compact", "min.insync.replicas": "1"},
    )


def ensure_topics(admin: AdminClient, specs: Sequence[TopicSpec], timeout: float = 30) -> list[str]:
    """Create the missing topics; return what existing ones disagree on (drift), in words."""
    existing = admin.list_topics(timeout=timeout).topics
    missing = [s for s in specs if s.name not in existing]
    if missing:
        futures = admin.create_topics(
            [NewTopic(s.name, s.partitions, s.replication_factor, config=s.config) for s in missing]
        )
        for name, future in futures.items():
            try:
                future.result(timeout)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise RuntimeError(f"could not create topic {name}: {exc}") from exc
        _wait_for_leaders(admin, [s.name for s in missing], timeout)
    return topic_drift(admin, [s for s in specs if s.name in existing], timeout)


def delete_topics_matching(admin: AdminClient, pattern: str, timeout: float = 60) -> list[str]:
    """Delete the topics whose names match `pattern` (a regular expression, anchored by the
    caller): the scratch topics of killed test or bench runs. Every partition on disk costs
    the broker time at each start (thousands made an unclean restart outlast the health
    wait). Returns the names deleted."""
    matches = re.compile(pattern).search
    names = sorted(t for t in admin.list_topics(timeout=timeout).topics if matches(t))
    for start in range(0, len(names), 500):
        for name, future in admin.delete_topics(names[start : start + 500]).items():
            try:
                future.result(timeout)
            except KafkaException as exc:
                if "UNKNOWN_TOPIC_OR_PART" not in str(exc):
                    raise RuntimeError(f"could not delete topic {name}: {exc}") from exc
    return names


def _wait_for_leaders(admin: AdminClient, names: Sequence[str], timeout: float) -> None:
    """New topics are usable once every partition has a leader."""
    deadline = time.monotonic() + timeout
    while True:
        topics = admin.list_topics(timeout=timeout).topics
        if all(
            n in topics
            and topics[n].partitions
            and all(p.leader >= 0 for p in topics[n].partitions.values())
            for n in names
        ):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics {list(names)} have no leader after {timeout:.0f}s")
        time.sleep(0.2)


def topic_drift(admin: AdminClient, specs: Sequence[TopicSpec], timeout: float = 30) -> list[str]:
    if not specs:
        return []
    drift: list[str] = []
    metadata = admin.list_topics(timeout=timeout).topics
    resources = [ConfigResource(ConfigResource.Type.TOPIC, s.name) for s in specs]
    described = admin.describe_configs(resources)
    for spec, resource in zip(specs, resources, strict=True):
        topic = metadata[spec.name]
        if len(topic.partitions) != spec.partitions:
            drift.append(
                f"{spec.name}: {len(topic.partitions)} partitions, settings say {spec.partitions}"
            )
        replicas = {len(p.replicas) for p in topic.partitions.values()}
        if replicas != {spec.replication_factor}:
            drift.append(
                f"{spec.name}: replication factor {sorted(replicas)}, settings say {spec.replication_factor}"
            )
        actual = described[resource].result(timeout)
        for key, want in spec.config.items():
            have = actual[key].value if key in actual else None
            if have != want:
                drift.append(f"{spec.name}: {key}={have}, settings say {want}")
    return drift
