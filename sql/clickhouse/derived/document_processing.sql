-- One row per processing job of the day, from its ProcessingJob* events (Started, then
-- Completed or Failed; all of a job's events share the job row's partition day). Run during
-- the day swap against the staged events; the result is swapped into document_processing.
SELECT
    partition_day,
    job_id,
    max(document_id) AS document_id,
    argMax(service, aggregate_version) AS service,
    argMax(status, aggregate_version) AS status,
    toUInt16(maxIf(attempt, event_type = 'ProcessingJobStarted')) AS attempt,
    min(occurred_at) AS started_at,
    if(
        countIf(event_type IN ('ProcessingJobCompleted', 'ProcessingJobFailed')) > 0,
        maxIf(occurred_at, event_type IN ('ProcessingJobCompleted', 'ProcessingJobFailed')),
        NULL
    ) AS finished_at,
    maxIf(duration_ms, event_type IN ('ProcessingJobCompleted', 'ProcessingJobFailed')) AS duration_ms,
    argMax(error, aggregate_version) AS error,
    toUInt8(least(count(), 255)) AS events
FROM {{db}}.`events`
WHERE aggregate_type = 'ProcessingJob'
GROUP BY partition_day, job_id
