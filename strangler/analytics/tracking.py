"""The analytics-service's own bookkeeping in Postgres (sql/postgres/017_microservices_tracking).

- service_processing: one row per event, 'succeeded' once its partition was swapped in. Set
  based: the swapped partition's event ids come back from ClickHouse as one Arrow column, are
  copied into a session temp table as one text block, and one statement upserts them all; no
  per-event Python work. A failed run writes no per-event rows (its log line says why).
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
            conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_TEMP} (event_id uuid NOT NULL)")
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

    def batch(self, metrics: Mapping[str, Any]) -> None:
        """A batch of records landed in staging."""
        self._batch += 1
        self.log(f"batch {self._batch} landed", {"batch": self._batch, **metrics})
        self.health("healthy", {"phase": "landing", "batch": self._batch, **metrics})

    def succeeded(self, event_ids: Sequence[str]) -> int:
        """Mark the swapped-in events 'succeeded' (one upsert); returns how many."""
        if not self.track_events or not event_ids:
            return 0
        duration_ms = max(self.elapsed_s * 1000, 0.0)
        with self.conn.cursor() as cur:
            cur.execute(f"TRUNCATE {_TEMP}")
            with cur.copy(f"COPY {_TEMP} (event_id) FROM STDIN") as copy:
                copy.write("\n".join(event_ids) + "\n")
            cur.execute(
                "INSERT INTO microservices.service_processing"
                " (service, event_id, status, attempts, started_at, finished_at, duration_ms)"
                " SELECT DISTINCT %s, event_id, 'succeeded', 1,"
                " now() - make_interval(secs => %s), now(), %s"
                f" FROM {_TEMP}"
                " ON CONFLICT (service, event_id) DO UPDATE SET status = 'succeeded',"
                " attempts = microservices.service_processing.attempts + 1,"
                " started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,"
                " error = NULL, duration_ms = EXCLUDED.duration_ms",
                (self.service, duration_ms / 1000, duration_ms),
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
