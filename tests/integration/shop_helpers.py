"""The test shop as a real monolith: its own database, read by a role that can only SELECT."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlparse, urlunparse

import psycopg
from psycopg import sql

from strangler.db.scratch import scratch_database, with_database
from strangler.spec import EstateSpec, load_spec
from tests.schemas.shop import SPEC, ShopDirt, seed_shop

SHOP_START = date(2026, 5, 4)
SHOP_DAYS = [SHOP_START + timedelta(days=i) for i in range(3)]
SHOP_NOW = datetime(2026, 5, 10, tzinfo=UTC)


@dataclass(frozen=True)
class ShopEstate:
    spec: EstateSpec
    estate_url: str
    monolith_url: str
    """The read-only role's URL."""
    owner_url: str
    """The monolith's owner (tests use it to edit and delete rows, as the application would)."""
    dirt: ShopDirt

    @property
    def keys(self) -> list[str]:
        return ["reference", *(d.isoformat() for d in SHOP_DAYS)]


def _as_user(url: str, user: str) -> str:
    parts = urlparse(url)
    host = parts.netloc.split("@")[-1]
    return urlunparse(parts._replace(netloc=f"{user}@{host}"))


@contextmanager
def shop_monolith(base_url: str, *, dirty: bool = True) -> Iterator[tuple[str, str, ShopDirt]]:
    """(owner URL, read-only URL, dirt) of a new database holding the shop."""
    name = f"shop_{uuid.uuid4().hex[:10]}"
    reader = f"{name}_reader"
    admin = with_database(base_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(reader)))
    owner = with_database(base_url, name)
    try:
        with psycopg.connect(owner) as conn:
            dirt = seed_shop(
                conn, start_day=SHOP_START, days=len(SHOP_DAYS), dirty=dirty, now=SHOP_NOW
            )
            for statement in (
                "GRANT USAGE ON SCHEMA shop TO {}",
                "GRANT SELECT ON ALL TABLES IN SCHEMA shop TO {}",
                "ALTER ROLE {} SET default_transaction_read_only = on",
            ):
                conn.execute(sql.SQL(statement).format(sql.Identifier(reader)))
            conn.commit()
        yield owner, _as_user(owner, reader), dirt
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(reader)))


@contextmanager
def shop_estate(base_url: str, *, dirty: bool = True) -> Iterator[ShopEstate]:
    """The shop monolith and, in another database, an estate to migrate it into."""
    with (
        shop_monolith(base_url, dirty=dirty) as (owner, reader, dirt),
        scratch_database(base_url) as estate,
    ):
        yield ShopEstate(load_spec(SPEC), estate, reader, owner, dirt)
