"""Fixtures of the browser and process tests: a Dagster instance of their own."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from strangler.settings import Settings
from strangler.stack.dagster_home import write_dagster_home
from strangler.stack.manager import Stack
from tests.integration.migration_helpers import with_database


@pytest.fixture(scope="module")
def dagster_home(stack: Stack, settings: Settings) -> Iterator[Path]:
    """The stack's dagster.yaml, pointed at a throwaway `dagster_<uuid>` database.

    Its parent stands for STRANGLER_HOME (a `strangler ui` subprocess finds it there).
    """
    name = f"dagster_{uuid.uuid4().hex[:12]}"
    admin = with_database(settings.postgres_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with tempfile.TemporaryDirectory(prefix="strangler-ui-") as tmp:
            isolated = settings.model_copy(update={"home": Path(tmp), "dagster_postgres_db": name})
            yield write_dagster_home(isolated)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
