-- One row per processing job from its events (Started, then Completed or Failed; all of a
-- job's events live in the job row's partition). Run during each partition swap against the
-- staged events; the result is swapped into document_processing.
SELECT
    partition_key,
    JSONExtractUInt(any(payload), 'job_id') AS job_id,
    max(JSONExtractUInt(payload, 'document_id')) AS document_id,
    JSONExtractString(argMax(payload, position), 'service') AS service,
    multiIf(
        countIf(event_type = 'ProcessingJobFailed') > 0, 'failed',
        countIf(event_type = 'ProcessingJobCompleted') > 0, 'completed',
        'started'
    ) AS status,
    toUInt16(maxIf(JSONExtractUInt(payload, 'attempt'), event_type = 'ProcessingJobStarted')) AS attempt,
    min(occurred_at) AS started_at,
    if(
        countIf(event_type IN ('ProcessingJobCompleted', 'ProcessingJobFailed')) > 0,
        maxIf(occurred_at, event_type IN ('ProcessingJobCompleted', 'ProcessingJobFailed')),
        NULL
    ) AS finished_at,
    if(
        countIf(event_type IN ('ProcessingJobCompleted', 'ProcessingJobFailed')
            AND JSONType(payload, 'duration_ms') IN ('Int64', 'UInt64')) > 0,
        toUInt32(maxIf(JSONExtractUInt(payload, 'duration_ms'),
            event_type IN ('ProcessingJobCompleted', 'ProcessingJobFailed'))),
        NULL
    ) AS duration_ms,
    JSONExtractString(argMax(payload, position), 'error') AS error,
    toUInt8(least(count(), 255)) AS events
FROM {{db}}.`events`
WHERE aggregate_type = 'ProcessingJob'
    AND event_type IN ('ProcessingJobStarted', 'ProcessingJobCompleted', 'ProcessingJobFailed')
GROUP BY partition_key, source_id
