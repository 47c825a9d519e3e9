-- The sample's daily aggregates, kept by materialized views over the generic events table.
--
-- Contract of the analytics folder (see docs/clickhouse.md): every table has a
-- `partition_key String` column and PARTITION BY partition_key; a view reads exactly one
-- table. A partition swap (REPLACE PARTITION) does not fire views, so the swap rebuilds each
-- target's partition from the staged events with the view's own SELECT and swaps it in too.
-- Read the targets with sum()/ -Merge() and GROUP BY: parts merge in the background.
-- Fields come out of the JSON payload with JSONExtract*: the events table is the same for
-- every estate; only these files know the sample's event types and fields.

-- Events per type and customer per day. customer_id is 0 for events that do not name one.
CREATE TABLE IF NOT EXISTS {{db}}.`event_counts_daily`{{on_cluster}}
(
    partition_key  String,
    event_type     LowCardinality(String),
    customer_id    UInt64,
    events         UInt64
)
ENGINE = {{engine SummingMergeTree}}
PARTITION BY partition_key
ORDER BY (partition_key, event_type, customer_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.`event_counts_daily_mv`{{on_cluster}}
TO {{db}}.`event_counts_daily`
AS SELECT
    partition_key,
    event_type,
    JSONExtractUInt(payload, 'customer_id') AS customer_id,
    count() AS events
FROM {{db}}.`events`
GROUP BY partition_key, event_type, customer_id;

-- Processing latency per service per day: t-digest states (quantiles cannot be summed; merging
-- states gives the quantiles of the union). t-digest because OCR jobs run past
-- quantileTiming's 30 s ceiling.
CREATE TABLE IF NOT EXISTS {{db}}.`processing_latency_daily`{{on_cluster}}
(
    partition_key  String,
    service        LowCardinality(String),
    jobs           SimpleAggregateFunction(sum, UInt64),
    failed         SimpleAggregateFunction(sum, UInt64),
    latency_ms     AggregateFunction(quantilesTDigest(0.5, 0.9, 0.99), UInt32)
)
ENGINE = {{engine AggregatingMergeTree}}
PARTITION BY partition_key
ORDER BY (partition_key, service);

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.`processing_latency_daily_mv`{{on_cluster}}
TO {{db}}.`processing_latency_daily`
AS SELECT
    partition_key,
    JSONExtractString(payload, 'service') AS service,
    toUInt64(count()) AS jobs,
    toUInt64(countIf(event_type = 'ProcessingJobFailed')) AS failed,
    quantilesTDigestState(0.5, 0.9, 0.99)(toUInt32(JSONExtractUInt(payload, 'duration_ms'))) AS latency_ms
FROM {{db}}.`events`
WHERE event_type IN ('ProcessingJobCompleted', 'ProcessingJobFailed')
    AND JSONType(payload, 'duration_ms') IN ('Int64', 'UInt64', 'Double')
GROUP BY partition_key, service;

-- Documents entering each status per day (DocumentUploaded counts as 'uploaded').
CREATE TABLE IF NOT EXISTS {{db}}.`documents_status_daily`{{on_cluster}}
(
    partition_key  String,
    status         LowCardinality(String),
    documents      UInt64
)
ENGINE = {{engine SummingMergeTree}}
PARTITION BY partition_key
ORDER BY (partition_key, status);

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.`documents_status_daily_mv`{{on_cluster}}
TO {{db}}.`documents_status_daily`
AS SELECT
    partition_key,
    if(event_type = 'DocumentUploaded', 'uploaded', JSONExtractString(payload, 'status')) AS status,
    count() AS documents
FROM {{db}}.`events`
WHERE event_type IN ('DocumentUploaded', 'DocumentStatusChanged')
GROUP BY partition_key, status;
