-- One row per processing job of the partition, with its outcome and duration; derived from the
-- staged ProcessingJob* events during each partition swap (derived/document_processing.sql),
-- never written directly.
-- ORDER BY (service, status, started_at, job_id): questions are per service, then outcome,
--   then time; job_id makes the order total.
-- duration_ms / finished_at are Nullable: a job still running has neither.
CREATE TABLE IF NOT EXISTS {{db}}.`document_processing`{{on_cluster}}
(
    partition_key  String,
    job_id         UInt64                           CODEC(T64, ZSTD(1)),
    document_id    UInt64                           CODEC(T64, ZSTD(1)),
    service        LowCardinality(String),
    status         LowCardinality(String),
    attempt        UInt16                           CODEC(T64, ZSTD(1)),
    started_at     DateTime64(6, 'UTC')             CODEC(Delta, ZSTD(1)),
    finished_at    Nullable(DateTime64(6, 'UTC'))   CODEC(ZSTD(1)),
    duration_ms    Nullable(UInt32)                 CODEC(T64, ZSTD(1)),
    error          String                           CODEC(ZSTD(3)),
    events         UInt8
)
ENGINE = {{engine MergeTree}}
PARTITION BY partition_key
ORDER BY (service, status, started_at, job_id);
