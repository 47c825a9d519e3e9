"""The sample monolith migrated by its spec yields exactly what the hand-written migration did.

The pinned digests were taken from the last release before the estate spec (commit f1cd41f)
on the same seed: every event id, type and payload, and every failed row with its rule.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import psycopg

from strangler.migration.partition_run import PartitionMigration, RunOptions

from .migration_helpers import START_DAY, seeded_database

NOW = datetime(2026, 3, 5, tzinfo=UTC)
"""Fixed, so the future-timestamp rule sees the same rows whatever today is."""
EVENTS = (3971, "96e873960b99ffea09593294f4498d64327fe85779a55899e5223f4985597074")
FAILED = (133, "558db2b1c4f9a958298584c614533755ffa49125f84ff016b5277aca01a20b7e")


def test_sample_events_and_failures_are_unchanged(postgres_url: str) -> None:
    with seeded_database(postgres_url, days=2, scale=0.5, dirty_rate=0.05, seed_value=11) as url:
        for day in (START_DAY, START_DAY + timedelta(days=1)):
            result = PartitionMigration(url, day, options=RunOptions(batch_size=300), now=NOW).run()
            assert result.migrated + result.failed == result.source_rows
        with psycopg.connect(url) as conn:
            events = conn.execute(
                "SELECT event_id::text, event_type, payload::text FROM eventstore.events"
                " ORDER BY event_id"
            ).fetchall()
            failed = conn.execute(
                "SELECT source_table, source_key, rule FROM migration_state.failed_entities"
                " ORDER BY 1, 2, 3"
            ).fetchall()
    digest = hashlib.sha256()
    for event_id, event_type, payload in events:
        canonical = json.dumps(json.loads(payload), sort_keys=True)
        digest.update(f"{event_id}|{event_type}|{canonical}\n".encode())
    assert (len(events), digest.hexdigest()) == EVENTS
    assert (len(failed), hashlib.sha256(repr(failed).encode()).hexdigest()) == FAILED
