-- Outbox publication as a watermark per (topic, partition key), not a timestamp per row.
--
-- The relay publishes a partition's outbox rows of a topic in position order, and its progress
-- (committed in Kafka with the records) is the last position sent. Stamping every row with
-- published_at rewrote each wide outbox row once more (its own index entries, its WAL): the
-- relay's most expensive statement. Here the relay records that last position once per topic
-- and partition key; a row is published when its position is at most it. A rollback of the
-- relay deletes the watermark, its undo writes back the restored progress.
-- depends: 022_source_columns

CREATE TABLE migration_state.outbox_published (
    topic         text        NOT NULL,
    partition_key text        NOT NULL,
    last_position bigint      NOT NULL CHECK (last_position >= 0),
    published_at  timestamptz NOT NULL DEFAULT now(),
    run_id        text,
    PRIMARY KEY (topic, partition_key)
);

INSERT INTO migration_state.outbox_published (topic, partition_key, last_position, published_at)
SELECT topic, partition_key, max(position), max(published_at)
FROM eventstore.outbox
WHERE published_at IS NOT NULL
GROUP BY topic, partition_key;

DROP INDEX IF EXISTS eventstore.outbox_unpublished_idx;
ALTER TABLE eventstore.outbox DROP COLUMN published_at;
