-- Schema drift: the monolith's columns as a migration first saw them, per source table.
--
-- Append-only (a run inserts with ON CONFLICT DO NOTHING): the first run records every column,
-- a column added later is recorded once, after the run that carried it. A column dropped or
-- retyped in the monolith since then is what the drift check and the run refuse.
-- depends: 021_partition_keys

CREATE TABLE migration_state.source_columns (
    source_table  text        NOT NULL,
    column_name   text        NOT NULL,
    pg_type       text        NOT NULL,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_table, column_name)
);
