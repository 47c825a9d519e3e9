-- Rollbacks: what a request asks for (services, time, code version), and where its
-- pre-rollback snapshot lives, so any rollback can be undone.
--
-- Snapshot tables of Postgres rows go to schema rollback_snapshots (rb_<request>_<table>).
-- depends: 018_migration_state_tracking

CREATE SCHEMA IF NOT EXISTS rollback_snapshots;

ALTER TABLE migration_state.rollback_requests
    ADD COLUMN services     text[]      NOT NULL DEFAULT ARRAY['all']::text[],
    ADD COLUMN after_ts     timestamptz,
    ADD COLUMN code_version text,
    ADD COLUMN undo_of      uuid;

CREATE TABLE migration_state.rollback_snapshots (
    request_id    uuid        NOT NULL
        REFERENCES migration_state.rollback_requests (request_id) ON DELETE CASCADE,
    store         text        NOT NULL,
    partition_key text        NOT NULL,
    location      text        NOT NULL,
    items         bigint      NOT NULL DEFAULT 0 CHECK (items >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    restored_at   timestamptz,
    PRIMARY KEY (request_id, store, partition_key)
);
