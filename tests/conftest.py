"""Shared fixtures: the real local stack, brought up once (idempotent, file-locked)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from strangler.resources.clickhouse import ClickHouseResource  # noqa: E402
from strangler.resources.embeddings import EmbedderResource  # noqa: E402
from strangler.resources.factory import build_resources  # noqa: E402
from strangler.resources.kafka import KafkaResource  # noqa: E402
from strangler.resources.postgres import PostgresResource  # noqa: E402
from strangler.resources.weaviate import WeaviateResource  # noqa: E402
from strangler.settings import Settings, get_settings  # noqa: E402
from strangler.stack.manager import Stack  # noqa: E402


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


@pytest.fixture(scope="session")
def postgres_url(stack: Stack, settings: Settings) -> str:
    """A database of its own, so tests never touch the data `make demo` left behind."""
    from urllib.parse import urlparse, urlunparse

    import psycopg
    from psycopg import sql

    base = urlparse(settings.postgres_url)
    admin = urlunparse(base._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (TEST_DATABASE,)
        ).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEST_DATABASE)))
    return urlunparse(base._replace(path=f"/{TEST_DATABASE}"))


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
