"""Before a command launches anything: does every store it needs answer?

A command that starts Dagster runs against a store that is down fails minutes later, deep in
a step, with a driver's traceback. Asking first (a few seconds at most per store) turns that
into one line naming the service, its address (without credentials), the setting that points
at it and how to start the local one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import httpx
import psycopg
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from strangler.cli_errors import ServiceUnavailable
from strangler.settings import Settings

Service = Literal["postgres", "kafka", "clickhouse", "weaviate", "dagster"]

STACK_UP = "`strangler stack up` starts the local one."
TIMEOUT_S = 5


def postgres_address(settings: Settings) -> str:
    """host:port/dbname of the libpq URL, never its user or password."""
    params = psycopg.conninfo.conninfo_to_dict(settings.postgres_url)
    return (
        f"{params.get('host', 'localhost')}:{params.get('port', 5432)}/{params.get('dbname', '')}"
    )


def url_address(url: str) -> str:
    """scheme://host:port of a URL, without credentials, path or query."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}"


def _reason(exc: BaseException) -> str:
    """The driver's last word on the first line ("Connection refused"), not its whole text."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return first.rsplit(": ", 1)[-1].strip().rstrip(".") or type(exc).__name__


def check_postgres(settings: Settings) -> None:
    password = settings.postgres_password.get_secret_value() if settings.postgres_password else None
    try:
        with psycopg.connect(
            settings.postgres_url, password=password, connect_timeout=TIMEOUT_S
        ) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        raise ServiceUnavailable(
            "PostgreSQL",
            postgres_address(settings),
            "STRANGLER_POSTGRES_URL",
            _reason(exc),
            STACK_UP,
        ) from exc


def check_kafka(settings: Settings) -> None:
    config: dict[str, str | int | float | bool] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "security.protocol": settings.kafka_security_protocol,
        "socket.timeout.ms": TIMEOUT_S * 1000,
        "log_level": 0,  # librdkafka would print every failed connect attempt to stderr
    }
    if settings.kafka_sasl_mechanism:
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
    if settings.kafka_sasl_username:
        config["sasl.username"] = settings.kafka_sasl_username
    if settings.kafka_sasl_password:
        config["sasl.password"] = settings.kafka_sasl_password.get_secret_value()
    try:
        AdminClient(config).list_topics(timeout=TIMEOUT_S)
    except KafkaException as exc:
        raise ServiceUnavailable(
            "Kafka",
            settings.kafka_bootstrap,
            "STRANGLER_KAFKA_BOOTSTRAP",
            "no broker answered within 5 s",
            STACK_UP,
        ) from exc


def _http_ready(service: str, address: str, setting: str, path: str, not_ready: str) -> None:
    """GET a health endpoint; anything but 200 (or no answer) is the service unavailable."""
    try:
        response = httpx.get(f"{address}{path}", timeout=TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(service, address, setting, _reason(exc), STACK_UP) from exc
    if response.status_code != 200:
        raise ServiceUnavailable(
            service, address, setting, f"{not_ready}HTTP {response.status_code}", STACK_UP
        )


def check_weaviate(settings: Settings) -> None:
    address = url_address(settings.weaviate_url)
    _http_ready(
        "Weaviate", address, "STRANGLER_WEAVIATE_URL", "/v1/.well-known/ready", "not ready: "
    )


def check_clickhouse(settings: Settings) -> None:
    """A ClickHouse server answers /ping; the embedded engine (chdb://) is opened in process."""
    if not settings.clickhouse_url.startswith(("http://", "https://")):
        return
    address = url_address(settings.clickhouse_url)
    _http_ready("ClickHouse", address, "STRANGLER_CLICKHOUSE_DSN", "/ping", "")


def dagster_home(settings: Settings) -> Path:
    return Path(os.environ.get("DAGSTER_HOME") or settings.dagster_home)


def check_dagster(settings: Settings) -> None:
    """Dagster refuses a DAGSTER_HOME that is not a directory; `strangler stack up` writes it."""
    home = dagster_home(settings)
    if not home.is_dir():
        raise ServiceUnavailable(
            "the Dagster instance",
            str(home),
            "DAGSTER_HOME",
            "no such directory",
            "`strangler stack up` creates it (with the stack's dagster.yaml).",
        )


CHECKS = {
    "postgres": check_postgres,
    "kafka": check_kafka,
    "clickhouse": check_clickhouse,
    "weaviate": check_weaviate,
    "dagster": check_dagster,
}


def require(settings: Settings, services: Iterable[Service]) -> None:
    """Raise ServiceUnavailable for the first of `services` that does not answer."""
    for service in dict.fromkeys(services):
        CHECKS[service](settings)
