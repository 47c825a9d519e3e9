-- Undo 019_consistency_reports: drops the table (and its indexes).

DROP TABLE IF EXISTS migration_state.consistency_reports;
