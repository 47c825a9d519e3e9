-- Daily aggregates kept by materialized views over analytics.events.
--
-- The views keep the aggregates current for any direct insert into analytics.events. A day
-- swap (REPLACE PARTITION) does not fire views, so the swap rebuilds each target's day from
-- the staged rows with the view's own SELECT (parsed from this file) and swaps it in too.
-- Every target is PARTITION BY partition_day for exactly that reason.
-- Read them with sum()/ -Merge() and GROUP BY: parts merge in the background, not on insert.

-- Events per type and customer per day. SummingMergeTree folds rows with the same key into
-- one sum, so partial rows from separate inserts converge. customer_id is 0 for events that do
-- not name a customer (status changes, OCR pages, jobs).
CREATE TABLE IF NOT EXISTS {{db}}.`event_counts_daily`{{on_cluster}}
(
    partition_day  Date,
    event_type     LowCardinality(String),
    customer_id    UInt64,
    events         UInt64
)
ENGINE = {{engine SummingMergeTree}}
PARTITION BY partition_day
ORDER BY (partition_day, event_type, customer_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.`event_counts_daily_mv`{{on_cluster}}
TO {{db}}.`event_counts_daily`
AS SELECT
    partition_day,
    event_type,
    customer_id,
    count() AS events
FROM {{db}}.`events`
GROUP BY partition_day, event_type, customer_id;

-- Processing latency per service per day. Quantiles cannot be summed, so the target keeps
-- t-digest states (AggregatingMergeTree + quantilesTDigestState): merging two days' states, or
-- two partial inserts of one day, gives the quantiles of the union. t-digest rather than
-- quantileTiming because OCR jobs run past quantileTiming's 30 s ceiling.
CREATE TABLE IF NOT EXISTS {{db}}.`processing_latency_daily`{{on_cluster}}
(
    partition_day  Date,
    service        LowCardinality(String),
    jobs           SimpleAggregateFunction(sum, UInt64),
    failed         SimpleAggregateFunction(sum, UInt64),
    latency_ms     AggregateFunction(quantilesTDigest(0.5, 0.9, 0.99), UInt32)
)
ENGINE = {{engine AggregatingMergeTree}}
PARTITION BY partition_day
ORDER BY (partition_day, service);

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.`processing_latency_daily_mv`{{on_cluster}}
TO {{db}}.`processing_latency_daily`
AS SELECT
    partition_day,
    service,
    toUInt64(count()) AS jobs,
    toUInt64(countIf(event_type = 'ProcessingJobFailed')) AS failed,
    quantilesTDigestState(0.5, 0.9, 0.99)(assumeNotNull(duration_ms)) AS latency_ms
FROM {{db}}.`events`
WHERE event_type IN ('ProcessingJobCompleted', 'ProcessingJobFailed') AND duration_ms IS NOT NULL
GROUP BY partition_day, service;

-- Documents entering each status per day (DocumentUploaded counts as 'uploaded').
CREATE TABLE IF NOT EXISTS {{db}}.`documents_status_daily`{{on_cluster}}
(
    partition_day  Date,
    status         LowCardinality(String),
    documents      UInt64
)
ENGINE = {{engine SummingMergeTree}}
PARTITION BY partition_day
ORDER BY (partition_day, status);

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.`documents_status_daily_mv`{{on_cluster}}
TO {{db}}.`documents_status_daily`
AS SELECT
    partition_day,
    status,
    count() AS documents
FROM {{db}}.`events`
WHERE event_type IN ('DocumentUploaded', 'DocumentStatusChanged')
GROUP BY partition_day, status;
