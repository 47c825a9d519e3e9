-- analytics.document_processing: one row per processing job (OCR, classification, ...) with
-- its outcome and duration, derived from the day's ProcessingJob* events during the day swap
-- (sql/clickhouse/derived/document_processing.sql), never written directly.
--
-- PARTITION BY partition_day: swapped together with analytics.events for the same day.
-- ORDER BY (service, status, started_at, job_id): the questions are per service ("how slow is
--   ocr today", "which jobs failed"), then by outcome, then by time; job_id makes it total.
-- duration_ms / finished_at are Nullable: a job still running has neither, and 0 would skew
--   every latency figure.
CREATE TABLE IF NOT EXISTS {{db}}.`document_processing`{{on_cluster}}
(
    partition_day  Date,
    job_id         UInt64                           CODEC(T64, ZSTD(1)),
    document_id    UInt64                           CODEC(T64, ZSTD(1)),
    service        LowCardinality(String),
    status         LowCardinality(String),
    attempt        UInt16                           CODEC(T64, ZSTD(1)),
    started_at     DateTime64(3, 'UTC')             CODEC(Delta, ZSTD(1)),
    finished_at    Nullable(DateTime64(3, 'UTC'))   CODEC(ZSTD(1)),
    duration_ms    Nullable(UInt32)                 CODEC(T64, ZSTD(1)),
    error          String                           CODEC(ZSTD(3)),
    events         UInt8
)
ENGINE = {{engine MergeTree}}
PARTITION BY partition_day
ORDER BY (service, status, started_at, job_id);
