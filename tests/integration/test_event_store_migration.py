"""The monolith -> event store migration of one day, against real Postgres."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import date, timedelta

import psycopg
import pytest

from strangler.migration.partition_run import PartitionMigration, RunOptions
from strangler.sample.dirt import DirtKind

from .migration_helpers import START_DAY, seeded_database, store_fingerprint

DAYS = [START_DAY, START_DAY + timedelta(days=1)]


def _run(url: str, day: date, **options: object) -> object:
    return PartitionMigration(url, day, options=RunOptions(**options)).run()  # type: ignore[arg-type]


def _source_rows(url: str, day: date) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM monolith.customers WHERE created_at::date = %(d)s)"
            " + (SELECT count(*) FROM monolith.documents WHERE created_at::date = %(d)s)"
            " + (SELECT count(*) FROM monolith.ocr_pages WHERE created_at::date = %(d)s)"
            " + (SELECT count(*) FROM monolith.processing_jobs WHERE created_at::date = %(d)s)",
            {"d": day},
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_every_row_is_migrated_or_failed_with_its_rule(postgres_url: str) -> None:
    with seeded_database(postgres_url, days=2, dirty_rate=0.08) as url:
        failed_total = 0
        for day in DAYS:
            result = PartitionMigration(url, day, options=RunOptions(batch_size=300)).run()
            assert result.source_rows == _source_rows(url, day)
            assert result.migrated + result.failed == result.source_rows
            assert result.events_written > result.migrated
            failed_total += result.failed
        with psycopg.connect(url) as conn:
            rules = {
                r[0]
                for r in conn.execute("SELECT DISTINCT rule FROM migration_state.failed_entities")
            }
            failed_rows = conn.execute(
                "SELECT count(DISTINCT (source_table, source_key)) FROM migration_state.failed_entities"
            ).fetchone()
            sample = conn.execute(
                "SELECT source_table, source_key, rule, reason, payload FROM migration_state.failed_entities"
                " WHERE rule = 'orphan_fk' LIMIT 1"
            ).fetchone()
            outbox_gap = conn.execute(
                "SELECT count(*) FROM eventstore.events e LEFT JOIN eventstore.outbox o USING (event_id)"
                " WHERE o.event_id IS NULL"
            ).fetchone()
        assert rules == {k.value for k in DirtKind}
        assert failed_rows is not None and failed_rows[0] == failed_total
        assert (
            sample is not None
            and "no parent row" in sample[3]
            and sample[4]["id"] == int(sample[1])
        )
        assert outbox_gap == (0,)


def test_rerunning_a_day_changes_nothing(postgres_url: str) -> None:
    with seeded_database(postgres_url) as url:
        first = PartitionMigration(url, DAYS[0]).run()
        before = store_fingerprint(url)
        second = PartitionMigration(url, DAYS[0]).run()
        third = PartitionMigration(url, DAYS[0]).run()
        assert store_fingerprint(url) == before
        assert first.events_written > 0
        assert second.events_written == third.events_written == 0
        assert second.migrated == first.migrated and second.failed == first.failed


def test_late_edit_appends_only_the_new_change(postgres_url: str) -> None:
    with seeded_database(postgres_url, dirty_rate=0.0) as url:
        PartitionMigration(url, DAYS[0]).run()
        with psycopg.connect(url) as conn:
            doc = conn.execute(
                "SELECT id FROM monolith.documents WHERE created_at::date = %s ORDER BY id LIMIT 1",
                (DAYS[0],),
            ).fetchone()
            assert doc is not None
            conn.execute(
                "UPDATE monolith.documents SET status = 'archived', updated_at = updated_at + interval '3 days'"
                " WHERE id = %s",
                doc,
            )
        result = PartitionMigration(url, DAYS[0]).run()
        assert result.events_written == 1
        with psycopg.connect(url) as conn:
            versions = conn.execute(
                "SELECT aggregate_version, event_type FROM eventstore.events"
                " WHERE aggregate_type = 'Document' AND aggregate_id = %s ORDER BY aggregate_version",
                (str(doc[0]),),
            ).fetchall()
            days = conn.execute(
                "SELECT DISTINCT o.partition_day FROM eventstore.outbox o JOIN eventstore.events e USING (event_id)"
                " WHERE e.aggregate_type = 'Document' AND e.aggregate_id = %s",
                (str(doc[0]),),
            ).fetchall()
        assert [v for v, _ in versions] == list(range(1, len(versions) + 1))
        assert versions[-1][1] == "DocumentStatusChanged"
        assert days == [(DAYS[0],)], "a late edit stays in its source row's partition"


def test_dry_run_writes_nothing(postgres_url: str) -> None:
    with seeded_database(postgres_url) as url:
        result = PartitionMigration(url, DAYS[0], options=RunOptions(dry_run=True)).run()
        assert result.dry_run and result.migrated > 0 and result.failed > 0
        assert result.migrated + result.failed == result.source_rows
        with psycopg.connect(url) as conn:
            counts = conn.execute(
                "SELECT (SELECT count(*) FROM eventstore.events), (SELECT count(*) FROM eventstore.outbox),"
                " (SELECT count(*) FROM migration_state.failed_entities),"
                " (SELECT count(*) FROM migration_state.migration_checkpoints)"
            ).fetchone()
        assert counts == (0, 0, 0, 0)


KILLABLE = textwrap.dedent(
    """
    import sys
    from datetime import date
    from strangler.migration.partition_run import PartitionMigration, RunOptions
    PartitionMigration(sys.argv[1], date.fromisoformat(sys.argv[2]), run_id=sys.argv[3],
                       options=RunOptions(batch_size=int(sys.argv[4]))).run()
    """
)


def _batches(url: str, run_id: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM migration_state.migration_metrics WHERE run_id = %s", (run_id,)
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize("seed_value", [3, 29])
def test_resume_after_kill_9_matches_an_uninterrupted_run(
    postgres_url: str, seed_value: int
) -> None:
    """Kill the run at several seeded points, re-run, and the store equals an uninterrupted run."""
    rng = random.Random(seed_value)
    with seeded_database(postgres_url) as reference, seeded_database(postgres_url) as victim:
        for day in DAYS:
            PartitionMigration(reference, day, options=RunOptions(batch_size=40)).run()
        kills = 0
        for day in DAYS:
            for _ in range(3):
                run_id = f"kill-{uuid.uuid4()}"
                target = rng.randint(1, 12)
                proc = subprocess.Popen(
                    [sys.executable, "-c", KILLABLE, victim, day.isoformat(), run_id, "40"]
                )
                deadline = time.monotonic() + 120
                while proc.poll() is None and time.monotonic() < deadline:
                    if _batches(victim, run_id) >= target:
                        proc.send_signal(signal.SIGKILL)
                        kills += 1
                        break
                    time.sleep(0.005)
                proc.wait(60)
            final = PartitionMigration(victim, day, options=RunOptions(batch_size=40)).run()
            assert final.migrated + final.failed == final.source_rows
        assert kills >= 3
        assert store_fingerprint(victim) == store_fingerprint(reference)


def test_reseeding_a_migrated_sample_keeps_its_days(postgres_url: str) -> None:
    """The main job on a later day re-seeds the days it migrated, so the re-run changes nothing."""
    from strangler.demo import migrated_sample_start, seed_sample
    from strangler.settings import Settings

    first = date(2026, 1, 5)
    with seeded_database(
        postgres_url, days=2, scale=0.05, dirty_rate=0.05, seed_value=7, start_day=first
    ) as url:
        with psycopg.connect(url) as conn:
            assert migrated_sample_start(conn) is None
        done = PartitionMigration(url, first).run()
        assert done.events_written > 0
        with psycopg.connect(url) as conn:
            assert migrated_sample_start(conn) == first
        report = seed_sample(
            Settings(postgres_url=url), days=2, scale=0.05, dirty_rate=0.05, seed_value=7
        )
        assert report.start_day == first
        again = PartitionMigration(url, first).run()
        assert again.events_written == 0 and again.failed == done.failed
