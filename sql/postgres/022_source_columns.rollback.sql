-- Undo 022_source_columns: forget the schema-drift baseline.

DROP TABLE IF EXISTS migration_state.source_columns;
