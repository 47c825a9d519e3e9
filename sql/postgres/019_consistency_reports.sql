-- Consistency reports: one row per check result, grouped by report (one `strangler check`
-- run, one reconciliation tick), so trends per check and partition can be read back.
--
-- Schema: migration_state. Applied by yoyo-migrations; undone by the .rollback.sql file beside it.
-- depends: 018_migration_state_tracking

CREATE TABLE migration_state.consistency_reports (
    result_id      bigint           GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    report_id      uuid             NOT NULL,
    source         text             NOT NULL CHECK (source IN ('cli', 'sensor', 'asset_check')),
    partition_key  text             NOT NULL,
    system         text             NOT NULL,
    check_name     text             NOT NULL,
    target         text             NOT NULL DEFAULT '',
    status         text             NOT NULL CHECK (status IN ('passed', 'failed', 'warning')),
    severity       text             NOT NULL CHECK (severity IN ('ERROR', 'WARN')),
    left_label     text             NOT NULL DEFAULT '',
    left_count     bigint,
    right_label    text             NOT NULL DEFAULT '',
    right_count    bigint,
    offending      jsonb            NOT NULL DEFAULT '[]'::jsonb,
    reproduce      text             NOT NULL DEFAULT '',
    description    text             NOT NULL DEFAULT '',
    details        jsonb            NOT NULL DEFAULT '{}'::jsonb,
    duration_s     double precision NOT NULL DEFAULT 0 CHECK (duration_s >= 0),
    checked_at     timestamptz      NOT NULL DEFAULT now()
);

CREATE INDEX consistency_reports_check_idx
    ON migration_state.consistency_reports (check_name, partition_key, checked_at);
CREATE INDEX consistency_reports_report_idx ON migration_state.consistency_reports (report_id);
CREATE INDEX consistency_reports_failed_idx
    ON migration_state.consistency_reports (checked_at) WHERE status <> 'passed';
