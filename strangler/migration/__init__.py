"""Pure migration logic: monolith rows -> validated domain events, batching, checkpoints."""
