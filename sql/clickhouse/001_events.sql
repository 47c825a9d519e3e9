-- analytics.events: one flattened row per domain event (~200 bytes uncompressed).
--
-- Template placeholders (rendered by strangler.analytics.ddl, never by hand):
--   {{db}}            the validated, backtick-quoted database
--   {{on_cluster}}    empty on a single node, ` ON CLUSTER `<name>`` in cluster mode
--   {{engine X}}      X on a single node, ReplicatedX('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
-- Files are append-only once applied (their checksum is recorded in _schema_versions):
-- change a table with a new numbered file.
--
-- PARTITION BY partition_day: the event-time day (UTC) is the unit we load, re-run and roll
--   back, so loading day D is one `ALTER TABLE ... REPLACE PARTITION` from a staging twin:
--   atomic for readers, never half a day, never a doubled day. ~365 partitions a year stays
--   well inside what MergeTree handles; coarser (monthly) partitions would make a day swap a
--   rewrite of the month.
-- ORDER BY (event_type, customer_id, occurred_at, event_id): the queries we serve filter by
--   type first (low cardinality, so the index prunes whole granules), then by customer, then by
--   time; event_id last makes the order total, so re-runs write identical parts.
-- Codecs: occurred_at is sorted inside each (type, customer) run, so Delta + ZSTD turns it into
--   small increments (events are irregular, DoubleDelta would not pay more); ids and counters
--   are mostly small or zero (fields an event type does not carry), which T64 + ZSTD packs to
--   almost nothing; free text gets ZSTD(3); repeated labels are LowCardinality dictionaries.
-- No ingestion timestamp on purpose: the same day loaded twice is the same bytes of data.
CREATE TABLE IF NOT EXISTS {{db}}.`events`{{on_cluster}}
(
    partition_day      Date,
    occurred_at        DateTime64(3, 'UTC')    CODEC(Delta, ZSTD(1)),
    event_id           UUID,
    event_type         LowCardinality(String),
    schema_version     UInt16                  CODEC(T64, ZSTD(1)),
    aggregate_type     LowCardinality(String),
    aggregate_id       String                  CODEC(ZSTD(1)),
    aggregate_version  UInt32                  CODEC(T64, ZSTD(1)),
    position           Int64                   CODEC(T64, ZSTD(1)),
    customer_id        UInt64                  CODEC(T64, ZSTD(1)),
    document_id        UInt64                  CODEC(T64, ZSTD(1)),
    page_id            UInt64                  CODEC(T64, ZSTD(1)),
    job_id             UInt64                  CODEC(T64, ZSTD(1)),
    service            LowCardinality(String),
    status             LowCardinality(String),
    category           LowCardinality(String),
    mime_type          LowCardinality(String),
    plan               LowCardinality(String),
    country            LowCardinality(String),
    size_bytes         UInt64                  CODEC(T64, ZSTD(1)),
    page_count         UInt32                  CODEC(T64, ZSTD(1)),
    page_number        UInt32                  CODEC(T64, ZSTD(1)),
    text_length        UInt32                  CODEC(T64, ZSTD(1)),
    confidence         Nullable(Float32)       CODEC(ZSTD(1)),
    attempt            UInt16                  CODEC(T64, ZSTD(1)),
    duration_ms        Nullable(UInt32)        CODEC(T64, ZSTD(1)),
    error              String                  CODEC(ZSTD(3)),
    source_topic       LowCardinality(String),
    kafka_partition    Int32                   CODEC(T64, ZSTD(1)),
    kafka_offset       Int64                   CODEC(Delta, ZSTD(1))
)
ENGINE = {{engine MergeTree}}
PARTITION BY partition_day
ORDER BY (event_type, customer_id, occurred_at, event_id);
