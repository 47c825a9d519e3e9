"""Resources built from settings, with secrets as Dagster `EnvVar`s."""

from __future__ import annotations

from typing import Any, TypedDict

import dagster as dg

from strangler.resources.clickhouse import ClickHouseResource
from strangler.resources.embeddings import EmbedderResource
from strangler.resources.kafka import KafkaResource
from strangler.resources.postgres import PostgresResource
from strangler.resources.weaviate import WeaviateResource
from strangler.settings import Settings


def _secret(settings_value: object, env_name: str) -> Any:
    """An EnvVar when the secret is set, so its value never lands in run config or logs."""
    return dg.EnvVar(env_name) if settings_value is not None else None


class StranglerResources(TypedDict):
    postgres: PostgresResource
    monolith: PostgresResource
    kafka: KafkaResource
    clickhouse: ClickHouseResource
    weaviate: WeaviateResource
    embedder: EmbedderResource


def build_resources(settings: Settings) -> StranglerResources:
    return {
        "postgres": PostgresResource(
            url=settings.postgres_url,
            password=_secret(settings.postgres_password, "STRANGLER_POSTGRES_PASSWORD"),
            pool_size=settings.postgres_pool_size,
        ),
        "monolith": PostgresResource(
            url=settings.source_url or settings.postgres_url,
            password=(
                _secret(settings.source_password, "STRANGLER_SOURCE_PASSWORD")
                if settings.source_url
                else _secret(settings.postgres_password, "STRANGLER_POSTGRES_PASSWORD")
            ),
            pool_size=settings.postgres_pool_size,
            read_only=True,
        ),
        "kafka": KafkaResource(
            bootstrap_servers=settings.kafka_bootstrap,
            security_protocol=settings.kafka_security_protocol,
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_username=settings.kafka_sasl_username,
            sasl_password=_secret(settings.kafka_sasl_password, "STRANGLER_KAFKA_SASL_PASSWORD"),
            topic_prefix=settings.kafka_topic_prefix,
        ),
        "clickhouse": ClickHouseResource(
            dsn=settings.clickhouse_url,
            password=_secret(settings.clickhouse_password, "STRANGLER_CLICKHOUSE_PASSWORD"),
            lock_timeout_s=settings.clickhouse_lock_timeout_s,
        ),
        "weaviate": WeaviateResource(
            url=settings.weaviate_url,
            grpc_port=settings.weaviate_grpc_port,
            api_key=_secret(settings.weaviate_api_key, "STRANGLER_WEAVIATE_API_KEY"),
        ),
        "embedder": EmbedderResource(
            model_path=settings.embedding_model,
            device=settings.embedding_device,
            batch_size=settings.embedding_batch_size,
            backend=settings.embedding_backend,
            cache_dir=str(settings.embedding_cache_dir) if settings.embedding_cache_dir else None,
        ),
    }
