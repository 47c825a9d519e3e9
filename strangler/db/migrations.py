"""Postgres schema migrations (sql/postgres), applied and rolled back by yoyo-migrations.

yoyo owns the bookkeeping (``_yoyo_migration``, a lock row against concurrent runs, a log);
this module only gives it typed entry points and a libpq-style URL.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from yoyo import get_backend, read_migrations
from yoyo.backends import DatabaseBackend
from yoyo.migrations import Migration, MigrationList, ancestors, topological_sort

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "sql" / "postgres"
"""The repository's ``sql/postgres``; the project is installed editable, so this is the source."""

LOCK_TIMEOUT_S = 60
_LIBPQ_SCHEMES = frozenset({"postgresql", "postgres"})
_YOYO_SCHEME = "postgresql+psycopg"


class MigrationError(RuntimeError):
    """A migration request that cannot be carried out as asked."""


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    """One migration file and whether the database has it."""

    id: str
    applied: bool
    applied_at: datetime | None


def yoyo_url(libpq_url: str, password: str | None = None) -> str:
    """Turn ``postgresql://user@host:port/db?opts`` into the URL yoyo's psycopg 3 backend wants.

    ``password`` (kept out of settings' URL so it never reaches logs) is spliced in here.
    """
    parts = urlsplit(libpq_url)
    scheme = parts.scheme.lower()
    if scheme != _YOYO_SCHEME and scheme not in _LIBPQ_SCHEMES:
        raise MigrationError(
            f"not a Postgres URL (scheme {parts.scheme!r}); expected postgresql://user@host:port/db"
        )
    if not parts.path.strip("/"):
        raise MigrationError("the Postgres URL names no database (postgresql://user@host:port/db)")
    if password is not None:
        if parts.username is None:
            raise MigrationError("a password was given but the URL names no user")
        user = parts.netloc.rpartition("@")[0].partition(":")[0]
        netloc = f"{user}:{quote(password, safe='')}@{parts.netloc.rpartition('@')[2]}"
    else:
        netloc = parts.netloc
    return urlunsplit((_YOYO_SCHEME, netloc, parts.path, parts.query, ""))


def _load(migrations_dir: Path) -> MigrationList:
    """Read and parse every migration up front, so a broken file fails loudly.

    yoyo's apply loop skips migrations that fail to load; parsing first turns that into an error.
    """
    if not migrations_dir.is_dir():
        raise MigrationError(f"migrations directory not found: {migrations_dir}")
    migrations = read_migrations(str(migrations_dir))
    for m in migrations:
        m.load()
    return migrations


@contextmanager
def _backend(url: str, password: str | None) -> Iterator[DatabaseBackend]:
    backend = get_backend(yoyo_url(url, password))
    try:
        yield backend
    finally:
        backend.connection.close()


def migrate(
    url: str, *, password: str | None = None, migrations_dir: Path = MIGRATIONS_DIR
) -> list[str]:
    """Apply every pending migration in dependency order; return the ids applied."""
    migrations = _load(migrations_dir)
    with _backend(url, password) as backend, backend.lock(timeout=LOCK_TIMEOUT_S):
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
        return [m.id for m in pending]


def rollback(
    url: str,
    *,
    count: int | None = 1,
    to: str | None = None,
    password: str | None = None,
    migrations_dir: Path = MIGRATIONS_DIR,
) -> list[str]:
    """Roll back the newest ``count`` applied migrations, or down to migration ``to``.

    ``to`` stays applied (with everything it depends on); everything else applied is rolled
    back. ``count=None`` without ``to`` rolls back all. Dependents always go before their
    dependencies. Returns the ids rolled back, in the order they were undone.
    """
    if count is not None and count < 0:
        raise MigrationError(f"count must be >= 0, got {count}")
    migrations = _load(migrations_dir)
    with _backend(url, password) as backend, backend.lock(timeout=LOCK_TIMEOUT_S):
        applied = backend.to_rollback(migrations)
        if to is not None:
            keep = _keep_set(migrations, to)
            chosen = [m for m in applied if m.id not in keep]
        elif count is None:
            chosen = list(applied)
        else:
            chosen = list(applied)[:count]
        backend.rollback_migrations(MigrationList(chosen))
        return [m.id for m in chosen]


def _keep_set(migrations: MigrationList, to: str) -> set[str]:
    by_id: dict[str, Migration] = {m.id: m for m in migrations}
    if to not in by_id:
        raise MigrationError(f"unknown migration {to!r}; known: {', '.join(sorted(by_id))}")
    target = by_id[to]
    return {to} | {m.id for m in ancestors(target, migrations)}


def status(
    url: str, *, password: str | None = None, migrations_dir: Path = MIGRATIONS_DIR
) -> list[MigrationStatus]:
    """Every migration file, in apply order, with when (UTC) it was applied, if it was."""
    migrations = _load(migrations_dir)
    with _backend(url, password) as backend:
        backend.ensure_internal_schema_updated()
        sql = backend.format_sql(
            "SELECT {quoted.migration_id}, {quoted.applied_at_utc} FROM {0.migration_table_quoted}"
        )
        applied_at: dict[str, datetime] = {
            mid: when.replace(tzinfo=UTC) for mid, when in backend.execute(sql).fetchall()
        }
    return [
        MigrationStatus(m.id, m.id in applied_at, applied_at.get(m.id))
        for m in topological_sort(migrations)
    ]
