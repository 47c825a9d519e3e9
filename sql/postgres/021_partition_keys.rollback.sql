-- Undo 021_partition_keys: back to day-only partitions.

DROP INDEX IF EXISTS eventstore.outbox_partition_key_idx;
ALTER TABLE eventstore.outbox DROP COLUMN IF EXISTS partition_key;
ALTER TABLE eventstore.outbox ALTER COLUMN partition_day SET EXPRESSION AS (COALESCE(
    make_date(substr(payload -> 'metadata' ->> 'partition_day', 1, 4)::int,
              substr(payload -> 'metadata' ->> 'partition_day', 6, 2)::int,
              substr(payload -> 'metadata' ->> 'partition_day', 9, 2)::int),
    (occurred_at AT TIME ZONE 'UTC')::date));

DROP INDEX IF EXISTS eventstore.events_partition_key_idx;
ALTER TABLE eventstore.events DROP COLUMN IF EXISTS partition_key;
ALTER TABLE eventstore.events ALTER COLUMN partition_day SET EXPRESSION AS (COALESCE(
    make_date(substr(metadata ->> 'partition_day', 1, 4)::int,
              substr(metadata ->> 'partition_day', 6, 2)::int,
              substr(metadata ->> 'partition_day', 9, 2)::int),
    (occurred_at AT TIME ZONE 'UTC')::date));
