"""The Postgres event store: append with optimistic concurrency, gap-free reads, snapshots, sagas."""
