"""The analytics-service's own bookkeeping in Postgres (sql/postgres/017_microservices_tracking).

- service_processing: one row per event; 'processing' once staged, 'succeeded' (or 'failed')
  once its day was swapped in (or not). Event ids of the run sit in a session temp table, so
  the final update is one statement and the ids never pile up in Python memory.
- processing_log: one line per batch with its metrics, plus start/finish lines.
- service_health: version, status and heartbeat, refreshed per batch.
- sync_status: committed offset vs end offset per topic partition of the consumer group.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import psycopg

from strangler.migration.consumer_lag import PartitionLag, record_lag

_TEMP = "analytics_run_events"


class ServiceTracker:
    """Writes through its own autocommit connection; each call is durable on its own."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        service: str,
        version: str,
        *,
        track_events: bool = True,
    ) -> None:
        self.conn = conn
        self.service = service
        self.version = version
        self.track_events = track_events
        self._batch = 0
        self._started = time.monotonic()
        if track_events:
            conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {_TEMP} (event_id uuid NOT NULL, batch integer NOT NULL)"
            )
            conn.execute(f"TRUNCATE {_TEMP}")

    def close(self) -> None:
        if self.track_events:
            self.conn.execute(f"DROP TABLE IF EXISTS {_TEMP}")

    def health(self, status: str, details: Mapping[str, Any] | None = None) -> None:
        self.conn.execute(
            "INSERT INTO microservices.service_health (service, version, status, details, heartbeat_at)"
            " VALUES (%s, %s, %s, %s::jsonb, now())"
            " ON CONFLICT (service) DO UPDATE SET version = EXCLUDED.version,"
            " status = EXCLUDED.status, details = EXCLUDED.details, heartbeat_at = now()",
            (self.service, self.version, status, json.dumps(dict(details or {}), default=str)),
        )

    def log(
        self,
        message: str,
        metrics: Mapping[str, Any] | None = None,
        level: str = "info",
    ) -> None:
        self.conn.execute(
            "INSERT INTO microservices.processing_log (service, level, message, metrics)"
            " VALUES (%s, %s, %s, %s::jsonb)",
            (self.service, level, message, json.dumps(dict(metrics or {}), default=str)),
        )

    def batch(self, event_ids: Sequence[bytes], metrics: Mapping[str, Any]) -> None:
        """A batch reached staging: its events are 'processing' until the swap."""
        self._batch += 1
        if self.track_events and event_ids:
            with self.conn.cursor() as cur:
                with cur.copy(f"COPY {_TEMP} (event_id, batch) FROM STDIN") as copy:
                    for raw in event_ids:
                        copy.write_row((_uuid_text(raw), self._batch))
                cur.execute(
                    "INSERT INTO microservices.service_processing"
                    " (service, event_id, status, attempts, started_at)"
                    " SELECT %s, b.event_id, 'processing', 1, now()"
                    f" FROM (SELECT DISTINCT event_id FROM {_TEMP} WHERE batch = %s) b"
                    " ON CONFLICT (service, event_id) DO UPDATE SET status = 'processing',"
                    " attempts = microservices.service_processing.attempts + 1,"
                    " started_at = now(), finished_at = NULL, error = NULL, duration_ms = NULL",
                    (self.service, self._batch),
                )
        self.log(f"batch {self._batch} staged", {"batch": self._batch, **metrics})
        self.health("healthy", {"phase": "staging", "batch": self._batch, **metrics})

    def finish(self, status: str, error: str | None = None) -> int:
        """Mark every event of the run 'succeeded' or 'failed'; returns how many."""
        if not self.track_events:
            return 0
        cur = self.conn.execute(
            "UPDATE microservices.service_processing sp SET status = %s, error = %s,"
            " finished_at = now(),"
            " duration_ms = greatest(extract(epoch FROM now() - sp.started_at) * 1000, 0)"
            f" FROM (SELECT DISTINCT event_id FROM {_TEMP}) run"
            " WHERE sp.service = %s AND sp.event_id = run.event_id",
            (status, error, self.service),
        )
        return cur.rowcount

    def sync_status(
        self, consumer_group: str, offsets: Iterable[tuple[str, int, int, int]]
    ) -> None:
        """(topic, partition, committed, end) per partition the group reads."""
        record_lag(
            self.conn,
            [
                PartitionLag(self.service, consumer_group, t, p, max(c, 0), max(e, 0))
                for t, p, c, e in offsets
            ],
        )

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self._started


def _uuid_text(raw: bytes) -> str:
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
