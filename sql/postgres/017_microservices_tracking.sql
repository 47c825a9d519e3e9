-- What each microservice did with each event, its health, and how far its consumers lag.
--
-- Schema: microservices. Applied by yoyo-migrations; undone by the .rollback.sql file beside it.
-- depends: 016_event_sourcing_infrastructure

CREATE SCHEMA IF NOT EXISTS microservices;

CREATE TABLE microservices.service_processing (
    service      text             NOT NULL,
    event_id     uuid             NOT NULL,
    status       text             NOT NULL
        CHECK (status IN ('pending', 'processing', 'succeeded', 'failed', 'skipped')),
    attempts     integer          NOT NULL DEFAULT 1 CHECK (attempts >= 0),
    duration_ms  double precision CHECK (duration_ms >= 0),
    error        text,
    started_at   timestamptz      NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    PRIMARY KEY (service, event_id)
);

CREATE INDEX service_processing_status_idx ON microservices.service_processing (service, status);

CREATE TABLE microservices.processing_log (
    log_id     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service    text        NOT NULL,
    event_id   uuid,
    level      text        NOT NULL DEFAULT 'info'
        CHECK (level IN ('debug', 'info', 'warning', 'error')),
    message    text        NOT NULL,
    metrics    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    logged_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX processing_log_service_time_idx ON microservices.processing_log (service, logged_at);

CREATE TABLE microservices.service_health (
    service       text        PRIMARY KEY,
    version       text        NOT NULL,
    status        text        NOT NULL
        CHECK (status IN ('starting', 'healthy', 'degraded', 'unhealthy', 'stopped')),
    details       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    heartbeat_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE microservices.sync_status (
    service           text        NOT NULL,
    consumer_group    text        NOT NULL,
    topic             text        NOT NULL,
    kafka_partition   integer     NOT NULL CHECK (kafka_partition >= 0),
    committed_offset  bigint      NOT NULL CHECK (committed_offset >= 0),
    end_offset        bigint      NOT NULL CHECK (end_offset >= 0),
    lag               bigint      GENERATED ALWAYS AS (greatest(end_offset - committed_offset, 0)) STORED,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, consumer_group, topic, kafka_partition)
);
