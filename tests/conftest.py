"""Shared fixtures: the real local stack, brought up once (idempotent, file-locked)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from strangler.migration.topics import delete_topics_matching  # noqa: E402
from strangler.resources.clickhouse import ClickHouseResource  # noqa: E402
from strangler.resources.clickhouse_session import drop_stray_databases  # noqa: E402
from strangler.resources.embeddings import EmbedderResource  # noqa: E402
from strangler.resources.factory import build_resources  # noqa: E402
from strangler.resources.kafka import KafkaResource  # noqa: E402
from strangler.resources.postgres import PostgresResource  # noqa: E402
from strangler.resources.weaviate import WeaviateResource  # noqa: E402
from strangler.settings import Settings, get_settings  # noqa: E402
from strangler.stack.manager import Stack  # noqa: E402
from strangler.stack.process import port_open  # noqa: E402

LEFT_BY_TESTS = r"^(t|s|sample|procs|readme)_[0-9a-f]{10}$"
"""ClickHouse databases the tests name after `unique`; a killed run leaves them behind."""


TOPICS_LEFT_BY_TESTS = r"^(([a-z]{1,2}|readme-)[0-9a-f]{10}\.|test\.[a-z]+\.[0-9a-f]{10}$)"
"""Kafka topics the tests name after `unique` (`t<unique>.customers.events`, `test.lag.<unique>`)."""


def _sweep_strays() -> None:
    """Drop what earlier (or killed) test runs left in the shared stack: ClickHouse databases
    (each makes every engine open slower) and Kafka topics (each partition slows every broker
    start). Run by the controller only, before any worker starts and after all have ended."""
    settings = get_settings()
    drop_stray_databases(settings.clickhouse_url, LEFT_BY_TESTS)
    host, _, port = settings.kafka_bootstrap.partition(":")
    if port_open(host or "127.0.0.1", int(port or 9092)):
        delete_topics_matching(
            KafkaResource(bootstrap_servers=settings.kafka_bootstrap).admin(), TOPICS_LEFT_BY_TESTS
        )


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        _sweep_strays()


def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        _sweep_strays()


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Stack:
    """The running stack; `up` is a no-op when it already runs."""
    stack = Stack(settings)
    stack.up()
    return stack


TEST_DATABASE = "strangler_test"


def worker_database_name() -> str:
    """`strangler_test`, or `strangler_test_gw<N>` under pytest-xdist: each worker its own
    database, so modules running at the same time never share one."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return f"{TEST_DATABASE}_{worker}" if worker else TEST_DATABASE


@pytest.fixture(scope="session")
def postgres_url(stack: Stack, settings: Settings) -> str:
    """A database of its own, so tests never touch the data `make demo` left behind."""
    from urllib.parse import urlparse, urlunparse

    import psycopg
    from psycopg import sql

    base = urlparse(settings.postgres_url)
    admin = urlunparse(base._replace(path="/postgres"))
    name = worker_database_name()
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return urlunparse(base._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def resources(stack: Stack, settings: Settings) -> dict[str, object]:
    return dict(build_resources(settings))


@pytest.fixture(scope="session")
def postgres(resources: dict[str, object]) -> Iterator[PostgresResource]:
    pg = resources["postgres"]
    assert isinstance(pg, PostgresResource)
    yield pg
    pg.pool().close()


@pytest.fixture(scope="session")
def kafka(resources: dict[str, object]) -> KafkaResource:
    k = resources["kafka"]
    assert isinstance(k, KafkaResource)
    return k


@pytest.fixture(scope="session")
def clickhouse(resources: dict[str, object]) -> ClickHouseResource:
    ch = resources["clickhouse"]
    assert isinstance(ch, ClickHouseResource)
    return ch


@pytest.fixture(scope="session")
def weaviate_resource(resources: dict[str, object]) -> WeaviateResource:
    wv = resources["weaviate"]
    assert isinstance(wv, WeaviateResource)
    return wv


@pytest.fixture(scope="session")
def embedder(resources: dict[str, object]) -> EmbedderResource:
    e = resources["embedder"]
    assert isinstance(e, EmbedderResource)
    return e


@pytest.fixture
def unique() -> str:
    """A suffix that keeps each test's topics, schemas and collections its own."""
    return uuid.uuid4().hex[:10]


SLOWEST_FIRST = (
    "integration/test_rollback.py",
    "e2e/test_ui.py",
    "integration/test_readme_commands.py",
    "integration/test_clickhouse_ranges.py",
    "integration/test_consistency_checks.py",
    "integration/test_shop_checks_rollback.py",
    "integration/test_clickhouse_sink.py",
    "integration/test_clickhouse_spec.py",
    "integration/test_bench_chain.py",
    "integration/test_outbox_relay.py",
    "integration/test_component.py",
    "integration/test_embedding_backends.py",
    "integration/test_weaviate_shop.py",
    "integration/test_cli_errors.py",
    "e2e/test_ui_signals.py",
    "integration/test_weaviate_ranges.py",
    "integration/test_weaviate_tenants.py",
)
"""The modules that take longest (CI's junit times), in that order. `make test` hands whole
modules to two workers in collection order: a long module handed out last would leave the
other worker idle at the end."""


STOPS_A_SERVICE = {"integration/test_outbox_relay.py::test_broker_restart_mid_publish_converges"}
"""Tests outside tests/serial/ that stop a service of the shared stack (here, Kafka)."""


def _module_of(item: pytest.Item, tests: Path) -> str:
    """The item's module relative to tests/ ('' when it lives elsewhere)."""
    try:
        return item.path.resolve().relative_to(tests).as_posix()
    except ValueError:
        return ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark `serial` what stops a shared service (make test runs those alone, after the two
    workers); then the slowest modules first, the rest and each module's tests in their order."""
    tests = Path(__file__).resolve().parent
    for item in items:
        module = _module_of(item, tests)
        if module.startswith("serial/") or f"{module}::{item.name}" in STOPS_A_SERVICE:
            item.add_marker(pytest.mark.serial)
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(_module_of(item, tests), len(rank)))
