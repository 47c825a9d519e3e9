-- Event store, outbox, snapshots, event-type registry and saga state.
--
-- Schema: eventstore. Applied by yoyo-migrations; undone by the .rollback.sql file beside it.
--
-- Writer contract (kept by strangler.event_store.EventStore):
--   * call pg_current_xact_id() before inserting into events, so a transaction owns its xid
--     before it takes any position; the global reader relies on this to never skip an event
--     whose transaction commits after one with a higher position;
--   * write each event's outbox row in the same transaction as the event.
-- A snapshot is trusted only while the event it was folded up to (last_event_id at
-- aggregate_version) is still stored, so rolling events back never leaves a stale snapshot in use.
-- Partition day: the Dagster partition an event belongs to. A migration sets it in
-- metadata.partition_day (the day of the source row, so a late edit of an old row stays in
-- that row's day and a re-run of the day covers it); otherwise it is the UTC day of occurred_at.
-- depends: 001_monolith

CREATE SCHEMA IF NOT EXISTS eventstore;

CREATE TABLE eventstore.events (
    position          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id          uuid        NOT NULL UNIQUE,
    aggregate_type    text        NOT NULL,
    aggregate_id      text        NOT NULL,
    aggregate_version integer     NOT NULL CHECK (aggregate_version >= 1),
    event_type        text        NOT NULL,
    schema_version    integer     NOT NULL DEFAULT 1 CHECK (schema_version >= 1),
    payload           jsonb       NOT NULL,
    metadata          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    occurred_at       timestamptz NOT NULL,
    recorded_at       timestamptz NOT NULL DEFAULT now(),
    writer_xid        xid8        NOT NULL DEFAULT pg_current_xact_id(),
    partition_day     date        GENERATED ALWAYS AS (COALESCE(
        make_date(substr(metadata ->> 'partition_day', 1, 4)::int,
                  substr(metadata ->> 'partition_day', 6, 2)::int,
                  substr(metadata ->> 'partition_day', 9, 2)::int),
        (occurred_at AT TIME ZONE 'UTC')::date)) STORED,
    CONSTRAINT events_aggregate_version_key
        UNIQUE (aggregate_type, aggregate_id, aggregate_version)
);

CREATE INDEX events_partition_day_idx ON eventstore.events (partition_day, position);

CREATE TABLE eventstore.outbox (
    event_id      uuid        PRIMARY KEY REFERENCES eventstore.events (event_id) ON DELETE CASCADE,
    position      bigint      NOT NULL UNIQUE,
    topic         text        NOT NULL,
    message_key   text        NOT NULL,
    headers       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    payload       jsonb       NOT NULL,
    occurred_at   timestamptz NOT NULL,
    partition_day date        GENERATED ALWAYS AS (COALESCE(
        make_date(substr(payload -> 'metadata' ->> 'partition_day', 1, 4)::int,
                  substr(payload -> 'metadata' ->> 'partition_day', 6, 2)::int,
                  substr(payload -> 'metadata' ->> 'partition_day', 9, 2)::int),
        (occurred_at AT TIME ZONE 'UTC')::date)) STORED,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);

CREATE INDEX outbox_partition_day_idx ON eventstore.outbox (partition_day, topic, position);

CREATE INDEX outbox_unpublished_idx ON eventstore.outbox (partition_day, position)
    WHERE published_at IS NULL;

CREATE TABLE eventstore.snapshots (
    aggregate_type    text        NOT NULL,
    aggregate_id      text        NOT NULL,
    aggregate_version integer     NOT NULL CHECK (aggregate_version >= 1),
    last_event_id     uuid        NOT NULL,
    fold_version      integer     NOT NULL DEFAULT 1,
    state             jsonb       NOT NULL,
    taken_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id, aggregate_version)
);

CREATE TABLE eventstore.event_types (
    event_type     text        NOT NULL,
    schema_version integer     NOT NULL CHECK (schema_version >= 1),
    json_schema    jsonb       NOT NULL,
    description    text        NOT NULL DEFAULT '',
    registered_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_type, schema_version)
);

CREATE TABLE eventstore.sagas (
    saga_id      uuid        PRIMARY KEY,
    saga_type    text        NOT NULL,
    status       text        NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'completed', 'compensating', 'compensated', 'failed')),
    step         text        NOT NULL,
    state        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    version      integer     NOT NULL DEFAULT 1 CHECK (version >= 1),
    started_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);

CREATE INDEX sagas_type_status_idx ON eventstore.sagas (saga_type, status);
