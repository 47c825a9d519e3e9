-- Undo 023_outbox_published: stamp the rows under each watermark again and forget the watermarks.

ALTER TABLE eventstore.outbox ADD COLUMN published_at timestamptz;

UPDATE eventstore.outbox o SET published_at = p.published_at
FROM migration_state.outbox_published p
WHERE p.topic = o.topic AND p.partition_key = o.partition_key AND o.position <= p.last_position;

CREATE INDEX outbox_unpublished_idx ON eventstore.outbox (partition_day, position)
    WHERE published_at IS NULL;

DROP TABLE migration_state.outbox_published;
