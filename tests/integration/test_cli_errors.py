"""Ordinary mistakes at the command line: one line on stderr, the right exit code, no secret.

Each row runs the installed `strangler` script in a subprocess (the way a user meets it) with
its own environment; "unreachable" rows point a setting at a port nobody listens on, while the
rest of the stack stays up. Exit codes: 1 failed run, 2 usage, 3 service unreachable/not set up.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import psycopg
import pytest
from psycopg import sql

from strangler.db.migrations import migrate
from strangler.settings import Settings
from strangler.stack.manager import Stack
from strangler.ui import free_port

pytestmark = pytest.mark.integration

STRANGLER = str(Path(sys.executable).parent / "strangler")
DAY = "2026-11-20"
SECRETS = ("hunter2-url-secret", "pw-env-secret")
EMPTY_DATABASE = "strangler_cli_unmigrated"


@dataclass(frozen=True)
class Case:
    id: str
    args: list[str]
    code: int
    says: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


def _closed() -> str:
    return str(free_port())


PG_DOWN = _closed()
KAFKA_DOWN = _closed()
WEAVIATE_DOWN = _closed()

CASES = [
    Case(
        "bad-day",
        ["migrate", "events", "--partition", "2026-13-45"],
        2,
        ("strangler migrate events: Invalid value for '--partition'", "'2026-13-45' is not a day"),
    ),
    Case(
        "reversed-range",
        ["migrate", "kafka", "--from", "2026-11-12", "--to", "2026-11-10"],
        2,
        ("Invalid value for --to: 2026-11-10 is before --from 2026-11-12",),
    ),
    Case(
        "no-day",
        ["migrate", "clickhouse"],
        2,
        ("give --partition D, or --from D1 --to D2",),
    ),
    Case(
        "partition-and-range",
        ["check", "--partition", DAY, "--from", DAY],
        2,
        ("use --partition or --from/--to, not both",),
    ),
    Case("unknown-option", ["--bogus"], 2, ("No such option: --bogus",)),
    Case(
        "undo-not-a-uuid",
        ["rollback", "undo", "not-a-uuid"],
        2,
        ("'not-a-uuid' is neither a rollback request id (a uuid) nor a report number",),
    ),
    Case(
        "undo-unknown-id",
        ["rollback", "undo", "00000000-0000-4000-8000-000000000000"],
        2,
        ("no rollback request or report '00000000-0000-4000-8000-000000000000'",),
    ),
    Case(
        "unknown-service",
        ["rollback", "redis", "--from", DAY, "--to", DAY],
        2,
        ("strangler rollback: Invalid value", "redis"),
    ),
    Case(
        "bad-setting",
        ["check", "--partition", DAY],
        2,
        ("setting STRANGLER_POSTGRES_POOL_SIZE: Input should be a valid integer",),
        {"STRANGLER_POSTGRES_POOL_SIZE": SECRETS[1]},
    ),
    Case(
        "postgres-down",
        ["check", "--partition", DAY],
        3,
        (
            f"PostgreSQL is unreachable at 127.0.0.1:{PG_DOWN}/strangler (STRANGLER_POSTGRES_URL)",
            "`strangler stack up` starts the local one",
        ),
        {
            "STRANGLER_POSTGRES_URL": f"postgresql://strangler:{SECRETS[0]}@127.0.0.1:{PG_DOWN}/strangler",
            "STRANGLER_POSTGRES_PASSWORD": SECRETS[1],
        },
    ),
    Case(
        "kafka-down",
        ["migrate", "kafka", "--partition", DAY],
        3,
        (
            f"Kafka is unreachable at 127.0.0.1:{KAFKA_DOWN} (STRANGLER_KAFKA_BOOTSTRAP)",
            "`strangler stack up` starts the local one",
        ),
        {"STRANGLER_KAFKA_BOOTSTRAP": f"127.0.0.1:{KAFKA_DOWN}"},
    ),
    Case(
        "weaviate-down",
        ["migrate", "weaviate", "--partition", DAY],
        3,
        (f"Weaviate is unreachable at http://127.0.0.1:{WEAVIATE_DOWN} (STRANGLER_WEAVIATE_URL)",),
        {"STRANGLER_WEAVIATE_URL": f"http://admin:{SECRETS[0]}@127.0.0.1:{WEAVIATE_DOWN}"},
    ),
    Case(
        "no-dagster-home",
        ["migrate", "events", "--partition", DAY],
        3,
        ("the Dagster instance", "(DAGSTER_HOME): no such directory", "`strangler stack up`"),
        {"DAGSTER_HOME": "/nonexistent/strangler-dagster-home"},
    ),
]


@pytest.fixture(scope="module")
def base_env(
    stack: Stack, settings: Settings, postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """The test database, migrated, and a throwaway Dagster home: nothing touches the demo's."""
    migrate(postgres_url)
    home = tmp_path_factory.mktemp("dagster")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRANGLER_DEBUG")}
    return {**env, "STRANGLER_POSTGRES_URL": postgres_url, "DAGSTER_HOME": str(home)}


@pytest.fixture(scope="module")
def unmigrated_url(stack: Stack, settings: Settings) -> str:
    """A database without the schema: what a user has before `strangler db migrate`."""
    base = urlparse(settings.postgres_url)
    admin = urlunparse(base._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(EMPTY_DATABASE)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(EMPTY_DATABASE)))
    return urlunparse(base._replace(path=f"/{EMPTY_DATABASE}"))


def _strangler(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STRANGLER, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _assert_one_line(
    result: subprocess.CompletedProcess[str], code: int, says: tuple[str, ...]
) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == code, result.stdout + result.stderr
    assert len(lines) == 1, result.stderr
    for text in says:
        assert text in lines[0], lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    for secret in SECRETS:
        assert secret not in result.stdout + result.stderr


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_mistake_is_one_line_with_its_exit_code(case: Case, base_env: dict[str, str]) -> None:
    result = _strangler(case.args, {**base_env, **case.env})
    _assert_one_line(result, case.code, case.says)


def test_unmigrated_database_says_db_migrate(base_env: dict[str, str], unmigrated_url: str) -> None:
    request = str(uuid.uuid4())
    result = _strangler(
        ["rollback", "undo", request], {**base_env, "STRANGLER_POSTGRES_URL": unmigrated_url}
    )
    _assert_one_line(result, 3, ("does not exist", "`strangler db migrate` applies it"))


def test_debug_shows_the_traceback(base_env: dict[str, str]) -> None:
    """The same mistake with --debug (or STRANGLER_DEBUG=1): Python's traceback instead."""
    env = {**base_env, "STRANGLER_POSTGRES_POOL_SIZE": "many"}
    for args, extra in ((["--debug", "check"], {}), (["check"], {"STRANGLER_DEBUG": "1"})):
        result = _strangler(args, {**env, **extra})
        assert result.returncode != 0
        assert "Traceback" in result.stderr and "postgres_pool_size" in result.stderr, result.stderr
