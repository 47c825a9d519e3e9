-- State of the monolith -> event store migration: runs, resume points, rejected rows, batch
-- metrics, the Kafka offsets written per partition, and rollback requests with their reports.
--
-- Schema: migration_state. Applied by yoyo-migrations; undone by the .rollback.sql file beside it.
-- Run ids are Dagster run ids (text). Partition keys are Dagster daily keys ('YYYY-MM-DD').
-- depends: 017_microservices_tracking

CREATE SCHEMA IF NOT EXISTS migration_state;

CREATE TABLE migration_state.migration_runs (
    run_id           text             PRIMARY KEY,
    migration        text             NOT NULL,
    partition_key    text             NOT NULL,
    status           text             NOT NULL DEFAULT 'running'
        CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    dry_run          boolean          NOT NULL DEFAULT false,
    code_version     text             NOT NULL,
    total_items      bigint           CHECK (total_items >= 0),
    processed_items  bigint           NOT NULL DEFAULT 0 CHECK (processed_items >= 0),
    failed_items     bigint           NOT NULL DEFAULT 0 CHECK (failed_items >= 0),
    rate_per_s       double precision CHECK (rate_per_s >= 0),
    eta_at           timestamptz,
    error            text,
    started_at       timestamptz      NOT NULL DEFAULT now(),
    updated_at       timestamptz      NOT NULL DEFAULT now(),
    finished_at      timestamptz
);

CREATE INDEX migration_runs_partition_idx
    ON migration_state.migration_runs (migration, partition_key, started_at);

CREATE TABLE migration_state.migration_checkpoints (
    migration      text        NOT NULL,
    partition_key  text        NOT NULL,
    position       jsonb       NOT NULL,
    run_id         text,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (migration, partition_key)
);

CREATE TABLE migration_state.failed_entities (
    failure_id     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    migration      text        NOT NULL,
    partition_key  text        NOT NULL,
    source_table   text        NOT NULL,
    source_key     text        NOT NULL,
    rule           text        NOT NULL,
    reason         text        NOT NULL,
    payload        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    run_id         text,
    occurrences    integer     NOT NULL DEFAULT 1 CHECK (occurrences >= 1),
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at    timestamptz,
    CONSTRAINT failed_entities_once_key UNIQUE (migration, source_table, source_key, rule)
);

CREATE INDEX failed_entities_partition_idx
    ON migration_state.failed_entities (migration, partition_key);

CREATE TABLE migration_state.migration_metrics (
    run_id         text             NOT NULL,
    batch_no       integer          NOT NULL CHECK (batch_no >= 0),
    migration      text             NOT NULL,
    partition_key  text             NOT NULL,
    rows_read      integer          NOT NULL DEFAULT 0,
    events_written integer          NOT NULL DEFAULT 0,
    failed         integer          NOT NULL DEFAULT 0,
    duration_ms    double precision NOT NULL CHECK (duration_ms >= 0),
    recorded_at    timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, batch_no)
);

CREATE TABLE migration_state.kafka_offset_ranges (
    topic            text        NOT NULL,
    partition_key    text        NOT NULL,
    kafka_partition  integer     NOT NULL CHECK (kafka_partition >= 0),
    start_offset     bigint      NOT NULL CHECK (start_offset >= 0),
    end_offset       bigint      NOT NULL,
    asset_key        text        NOT NULL,
    run_id           text,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition_key, kafka_partition),
    CONSTRAINT kafka_offset_ranges_order_check CHECK (end_offset >= start_offset)
);

COMMENT ON COLUMN migration_state.kafka_offset_ranges.end_offset
    IS 'Exclusive: the offset after the last message written for the partition key.';

CREATE TABLE migration_state.rollback_requests (
    request_id      uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    asset_key       text        NOT NULL,
    partition_keys  text[]      NOT NULL CHECK (cardinality(partition_keys) >= 1),
    reason          text        NOT NULL,
    requested_by    text        NOT NULL,
    dry_run         boolean     NOT NULL DEFAULT false,
    status          text        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'rejected')),
    dagster_run_id  text,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz
);

CREATE INDEX rollback_requests_pending_idx
    ON migration_state.rollback_requests (requested_at) WHERE status = 'pending';

CREATE TABLE migration_state.rollback_reports (
    report_id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id     uuid        NOT NULL
        REFERENCES migration_state.rollback_requests (request_id) ON DELETE CASCADE,
    partition_key  text        NOT NULL,
    store          text        NOT NULL,
    status         text        NOT NULL CHECK (status IN ('succeeded', 'failed', 'skipped')),
    rows_before    bigint,
    rows_after     bigint,
    details        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT rollback_reports_once_key UNIQUE (request_id, partition_key, store)
);
