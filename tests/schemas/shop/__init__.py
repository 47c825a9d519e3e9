"""The test shop: a second monolith schema unlike the sample, its spec and its generator."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

HERE = Path(__file__).parent
SCHEMA_SQL = HERE / "schema.sql"
SPEC = HERE / "strangler.yaml"
COUNTRIES = [("NL", "Netherlands", "21.00"), ("DE", "Germany", "19.00"), ("FR", "France", "20.00")]
NAMESPACE = uuid.UUID("0b0e7a52-6f4e-4d2b-9a55-5f0c2f3d1e01")
NOTES = {
    "placed": (
        "Order placed, waiting for the customer's payment",
        "New order received through the web shop",
        "Basket checked out, payment still pending",
    ),
    "paid": (
        "Payment received by credit card",
        "Customer paid by bank transfer, ready to pack",
        "Invoice settled, order paid in full",
    ),
    "shipped": (
        "Parcel handed to the courier for delivery",
        "Shipped with a tracking number, arrives in two days",
        "Package dispatched from the warehouse",
    ),
    "cancelled": (
        "Customer cancelled the order and asked for a refund",
        "Order cancelled: item out of stock, money returned",
        "Buyer changed their mind and withdrew the purchase",
    ),
}
"""The order's note by status (free text for the search collections; no random draw, so the
generator's other values stay what they were)."""


@dataclass
class ShopDirt:
    """Where the generator planted each bad row: (table, aggregate id) -> (rule, column)."""

    rows: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)

    def add(self, table: str, key: str, rule: str, column: str) -> None:
        self.rows[(table, key)] = (rule, column)


def account_id(n: int) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"account-{n}")


def create_schema(conn: psycopg.Connection[Any]) -> None:
    conn.execute(SCHEMA_SQL.read_text())


def seed_shop(
    conn: psycopg.Connection[Any],
    *,
    start_day: date,
    days: int = 3,
    accounts_per_day: int = 12,
    dirty: bool = True,
    now: datetime,
    seed: int = 7,
) -> ShopDirt:
    """Create the schema and a deterministic shop; return where the dirt is."""
    rng = random.Random(seed)
    dirt = ShopDirt()
    create_schema(conn)
    conn.cursor().executemany(
        "INSERT INTO shop.countries (code, name, vat_rate) VALUES (%s, %s, %s)", COUNTRIES
    )
    n = 0
    for d in range(days):
        day = start_day + timedelta(days=d)
        for i in range(accounts_per_day):
            n += 1
            at = datetime.combine(day, time(1), tzinfo=UTC) + timedelta(minutes=97 * i)
            account = account_id(n)
            email = f"user{n}@shop.test"
            name = f"User {n}"
            country = COUNTRIES[n % len(COUNTRIES)][0]
            tier = ("free", "plus", "business")[n % 3]
            deleted = at + timedelta(hours=2) if n % 10 == 0 else None
            preferences = '{"theme": "dark"}' if n % 2 else None
            kind = (n % 7) if dirty else -1
            if kind == 1:
                email = None
                dirt.add("accounts", str(account), "null_required", "email")
            elif kind == 2:
                name = f"User\x07{n}"
                dirt.add("accounts", str(account), "control_chars", "display_name")
            elif kind == 3 and n > 3:
                email = f"user{n - 3}@shop.test"
                later = max(account, account_id(n - 3))
                dirt.add("accounts", str(later), "duplicate_natural_key", "email")
            elif kind == 4:
                country = "XX"
                dirt.add("accounts", str(account), "orphan_fk", "country_code")
            elif kind == 5:
                preferences = '{"theme": dark'
                dirt.add("accounts", str(account), "malformed_json", "preferences")
            conn.execute(
                "INSERT INTO shop.accounts (id, email, display_name, tier, country_code, settings,"
                " preferences, signed_up_at, modified_at, deleted_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    account,
                    email,
                    name,
                    tier,
                    country,
                    psycopg.types.json.Jsonb({"newsletter": n % 2 == 0, "n": n}),
                    preferences,
                    at,
                    at + timedelta(minutes=5),
                    deleted,
                ),
            )
            for order_no in range(1, 1 + rng.randint(1, 3)):
                placed = at + timedelta(minutes=10 * order_no)
                total = Decimal(rng.randint(100, 99_999)) / 100
                status = ("placed", "paid", "shipped", "cancelled")[rng.randint(0, 3)]
                shipped = placed + timedelta(hours=3) if status == "shipped" else None
                order_key = f"{account}|{order_no}"
                if dirty and order_no == 2 and n % 5 == 0:
                    total = Decimal("-1.00")
                    dirt.add("orders", order_key, "out_of_range", "total")
                if dirty and order_no == 1 and n % 4 == 0 and shipped is not None:
                    shipped = now + timedelta(days=30)
                    dirt.add("orders", order_key, "future_timestamp", "shipped_at")
                conn.execute(
                    "INSERT INTO shop.orders (account_id, order_no, placed_at, status, total,"
                    " shipped_at, tags, note) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        account,
                        order_no,
                        placed,
                        status,
                        total,
                        shipped,
                        ["web", f"n{n}"],
                        NOTES[status][(n + order_no) % 3],
                    ),
                )
                for line_no in range(1, 1 + rng.randint(1, 4)):
                    quantity: int | None = rng.randint(1, 5)
                    if dirty and line_no == 2 and (n + order_no) % 6 == 0:
                        quantity = 0
                        dirt.add(
                            "order_lines", f"{order_key}|{line_no}", "out_of_range", "quantity"
                        )
                    conn.execute(
                        "INSERT INTO shop.order_lines (account_id, order_no, line_no, sku, quantity,"
                        " unit_price) VALUES (%s, %s, %s, %s, %s, %s)",
                        (
                            account,
                            order_no,
                            line_no,
                            f"SKU-{rng.randint(1, 50):03d}",
                            quantity,
                            Decimal(rng.randint(50, 5_000)) / 100,
                        ),
                    )
    return dirt
