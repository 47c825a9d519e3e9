"""The Postgres event store: optimistic appends, gap-free global reads, snapshots, sagas."""
