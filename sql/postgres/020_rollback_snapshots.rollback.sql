-- Undo 020_rollback_snapshots (snapshot tables in rollback_snapshots go with the schema).

DROP TABLE IF EXISTS migration_state.rollback_snapshots;
ALTER TABLE migration_state.rollback_requests
    DROP COLUMN IF EXISTS undo_of,
    DROP COLUMN IF EXISTS code_version,
    DROP COLUMN IF EXISTS after_ts,
    DROP COLUMN IF EXISTS services;
DROP SCHEMA IF EXISTS rollback_snapshots CASCADE;
