-- Partition keys beyond days: reference data (aggregates without a time column) is migrated
-- as one partition, `reference`, that has no day.
--
-- A migration marks such events with metadata.partition_key; their partition_day is NULL so
-- no daily read, check or rollback ever counts them, and `partition_key` (text) is what the
-- relay and the checks select on: the day as YYYY-MM-DD, or the non-day key.
-- depends: 020_rollback_snapshots

ALTER TABLE eventstore.events ALTER COLUMN partition_day SET EXPRESSION AS (
    CASE WHEN metadata ? 'partition_key' THEN NULL ELSE COALESCE(
        make_date(substr(metadata ->> 'partition_day', 1, 4)::int,
                  substr(metadata ->> 'partition_day', 6, 2)::int,
                  substr(metadata ->> 'partition_day', 9, 2)::int),
        (occurred_at AT TIME ZONE 'UTC')::date) END);

ALTER TABLE eventstore.events ADD COLUMN partition_key text GENERATED ALWAYS AS (COALESCE(
    metadata ->> 'partition_key',
    metadata ->> 'partition_day',
    lpad(extract(year FROM occurred_at AT TIME ZONE 'UTC')::int::text, 4, '0') || '-'
    || lpad(extract(month FROM occurred_at AT TIME ZONE 'UTC')::int::text, 2, '0') || '-'
    || lpad(extract(day FROM occurred_at AT TIME ZONE 'UTC')::int::text, 2, '0'))) STORED;

CREATE INDEX events_partition_key_idx ON eventstore.events (partition_key, position);

ALTER TABLE eventstore.outbox ALTER COLUMN partition_day SET EXPRESSION AS (
    CASE WHEN payload -> 'metadata' ? 'partition_key' THEN NULL ELSE COALESCE(
        make_date(substr(payload -> 'metadata' ->> 'partition_day', 1, 4)::int,
                  substr(payload -> 'metadata' ->> 'partition_day', 6, 2)::int,
                  substr(payload -> 'metadata' ->> 'partition_day', 9, 2)::int),
        (occurred_at AT TIME ZONE 'UTC')::date) END);

ALTER TABLE eventstore.outbox ADD COLUMN partition_key text GENERATED ALWAYS AS (COALESCE(
    payload -> 'metadata' ->> 'partition_key',
    payload -> 'metadata' ->> 'partition_day',
    lpad(extract(year FROM occurred_at AT TIME ZONE 'UTC')::int::text, 4, '0') || '-'
    || lpad(extract(month FROM occurred_at AT TIME ZONE 'UTC')::int::text, 2, '0') || '-'
    || lpad(extract(day FROM occurred_at AT TIME ZONE 'UTC')::int::text, 2, '0'))) STORED;

CREATE INDEX outbox_partition_key_idx ON eventstore.outbox (partition_key, topic, position);
