-- A second monolith, unlike the sample, for the tests: a small shop.
--
-- What it has that the sample has not: a uuid primary key (accounts), composite primary keys
-- (orders, order_lines), a child dated by its parent through a composite foreign key
-- (order_lines -> orders), reference data without any time column (countries), a soft-delete
-- column (accounts.deleted_at), money as numeric(12,2), jsonb (and JSON kept in text), enums,
-- an updated_at column
-- under another name (modified_at), tables with no updated_at at all, and free text (orders.note,
-- what the search collections embed).

CREATE SCHEMA shop;

CREATE TYPE shop.account_tier AS ENUM ('free', 'plus', 'business');
CREATE TYPE shop.order_status AS ENUM ('placed', 'paid', 'shipped', 'cancelled');

CREATE TABLE shop.countries (
    code      char(2) PRIMARY KEY,
    name      text NOT NULL,
    vat_rate  numeric(5, 2) NOT NULL
);

CREATE TABLE shop.accounts (
    id            uuid PRIMARY KEY,
    email         text,
    display_name  text,
    tier          shop.account_tier NOT NULL DEFAULT 'free',
    country_code  char(2),
    settings      jsonb NOT NULL DEFAULT '{}'::jsonb,
    preferences   text,
    signed_up_at  timestamptz NOT NULL,
    modified_at   timestamptz NOT NULL,
    deleted_at    timestamptz
);

CREATE TABLE shop.orders (
    account_id  uuid NOT NULL,
    order_no    integer NOT NULL,
    placed_at   timestamptz NOT NULL,
    status      shop.order_status NOT NULL DEFAULT 'placed',
    total       numeric(12, 2),
    currency    char(3) NOT NULL DEFAULT 'EUR',
    shipped_at  timestamptz,
    tags        text[] NOT NULL DEFAULT '{}',
    note        text,
    PRIMARY KEY (account_id, order_no)
);

CREATE TABLE shop.order_lines (
    account_id  uuid NOT NULL,
    order_no    integer NOT NULL,
    line_no     smallint NOT NULL,
    sku         text NOT NULL,
    quantity    integer,
    unit_price  numeric(12, 2) NOT NULL,
    PRIMARY KEY (account_id, order_no, line_no),
    FOREIGN KEY (account_id, order_no) REFERENCES shop.orders (account_id, order_no)
        ON DELETE CASCADE
);

CREATE INDEX accounts_signed_up_at_idx ON shop.accounts (signed_up_at);
CREATE INDEX orders_placed_at_idx ON shop.orders (placed_at);
