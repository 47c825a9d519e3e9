-- analytics.events: one row per domain event of every aggregate (typed common columns + the
-- payload as JSON text). The spec's current-state tables and the user's analytics derive from it.
--
-- Template placeholders (rendered by strangler.analytics.ddl, never by hand):
--   {{db}}            the validated, backtick-quoted database
--   {{on_cluster}}    empty on a single node, ` ON CLUSTER `<name>`` in cluster mode
--   {{engine X}}      X on a single node, ReplicatedX('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
-- Files are append-only once applied (their checksum is recorded in _schema_versions):
-- change a table with a new numbered file.
--
-- PARTITION BY partition_key: Strangler's partition key of the event ('YYYY-MM-DD' for a day,
--   'reference' for reference data, whatever key a coarser granularity brings), the unit we
--   load, re-run and roll back. Loading a partition is one `ALTER TABLE ... REPLACE PARTITION`
--   from a staging twin: atomic for readers, never half a partition, never a doubled one.
-- ORDER BY (aggregate_type, event_type, source_id, position): queries filter by aggregate and
--   type first (low cardinality: the index prunes whole granules); a row's events are then
--   adjacent and in order, which is what the current-state rebuild reads; position makes the
--   order total, so re-runs write identical parts.
-- source_table / source_id: the monolith row the event is about (from the event metadata); a
--   folded aggregate shares its parent's stream (aggregate_type/id) but keeps its own row.
-- kafka_*: where the sink read the event (-1 when it came from the event store).
-- Codecs: positions and offsets grow inside a run, so Delta + ZSTD; the payload is JSON text,
--   ZSTD(3); repeated labels are LowCardinality dictionaries.
-- No ingestion timestamp on purpose: the same partition loaded twice is the same data.
CREATE TABLE IF NOT EXISTS {{db}}.`events`{{on_cluster}}
(
    partition_key      String,
    occurred_at        DateTime64(6, 'UTC')    CODEC(Delta, ZSTD(1)),
    event_id           UUID,
    event_type         LowCardinality(String),
    schema_version     UInt16                  CODEC(T64, ZSTD(1)),
    aggregate_type     LowCardinality(String),
    aggregate_id       String                  CODEC(ZSTD(1)),
    aggregate_version  UInt32                  CODEC(T64, ZSTD(1)),
    position           Int64                   CODEC(Delta, ZSTD(1)),
    source_table       LowCardinality(String),
    source_id          String                  CODEC(ZSTD(1)),
    payload            String                  CODEC(ZSTD(3)),
    kafka_topic        LowCardinality(String),
    kafka_partition    Int32                   CODEC(T64, ZSTD(1)),
    kafka_offset       Int64                   CODEC(Delta, ZSTD(1))
)
ENGINE = {{engine MergeTree}}
PARTITION BY partition_key
ORDER BY (aggregate_type, event_type, source_id, position);
