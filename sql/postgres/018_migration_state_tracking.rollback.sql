-- Undo 018_migration_state_tracking: drops the migration_state schema's tables, then the schema.

DROP TABLE IF EXISTS migration_state.rollback_reports;
DROP TABLE IF EXISTS migration_state.rollback_requests;
DROP TABLE IF EXISTS migration_state.kafka_offset_ranges;
DROP TABLE IF EXISTS migration_state.migration_metrics;
DROP TABLE IF EXISTS migration_state.failed_entities;
DROP TABLE IF EXISTS migration_state.migration_checkpoints;
DROP TABLE IF EXISTS migration_state.migration_runs;
DROP SCHEMA IF EXISTS migration_state;
