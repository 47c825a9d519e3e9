"""Saga state in ``eventstore.sagas``, changed only by optimistic, version-checked updates.

Lifecycle: ``start`` -> running; ``advance`` (running -> running, next step); ``complete``
(running -> completed); ``compensate`` (running/compensating -> compensating, one undo step
at a time); ``compensated`` (compensating -> compensated); ``fail`` (any open state -> failed).
Every change takes the Saga the caller last read: if someone changed it since, the update
matches no row and ConcurrencyError says which version is current.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import class_row

from strangler.event_store._db import Source, connection, jsonb
from strangler.event_store.errors import ConcurrencyError, EventStoreError

SagaStatus = Literal["running", "completed", "compensating", "compensated", "failed"]
OPEN: frozenset[str] = frozenset({"running", "compensating"})

_COLUMNS = "saga_id, saga_type, status, step, state, version, started_at, updated_at, finished_at"

_INSERT = (
    "INSERT INTO eventstore.sagas (saga_id, saga_type, status, step, state) "
    "VALUES (%s, %s, 'running', %s, %s) ON CONFLICT (saga_id) DO NOTHING"
)

_SELECT = "SELECT " + _COLUMNS + " FROM eventstore.sagas WHERE saga_id = %s"

_UPDATE = (
    "UPDATE eventstore.sagas SET status = %s, step = %s, state = %s, version = version + 1, "
    "updated_at = now(), finished_at = CASE WHEN %s THEN now() END "
    "WHERE saga_id = %s AND version = %s AND status = ANY(%s) "
    "RETURNING " + _COLUMNS
)


class SagaTransitionError(EventStoreError):
    """The saga is not in a state that allows the requested change."""


@dataclass(frozen=True, slots=True)
class Saga:
    """A saga as last read; pass it back to change it."""

    saga_id: uuid.UUID
    saga_type: str
    status: str
    step: str
    state: dict[str, Any]
    version: int
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class SagaStore:
    """Start, read and move sagas; every move is checked against the caller's version."""

    def __init__(self, source: Source) -> None:
        self._source = source

    def start(
        self,
        saga_type: str,
        step: str,
        state: dict[str, Any] | None = None,
        *,
        saga_id: uuid.UUID | None = None,
    ) -> Saga:
        """Create a running saga. With a given ``saga_id`` a repeated start returns the saga
        as stored (so a re-run does not start it twice)."""
        sid = saga_id or uuid.uuid4()
        with connection(self._source) as conn, conn.transaction():
            conn.execute(_INSERT, (sid, saga_type, step, jsonb(state or {})))
            saga = self._get(conn, sid)
        if saga.saga_type != saga_type:
            raise SagaTransitionError(
                f"saga {sid} already exists with type {saga.saga_type!r}, not {saga_type!r}"
            )
        return saga

    def get(self, saga_id: uuid.UUID) -> Saga:
        with connection(self._source) as conn:
            return self._get(conn, saga_id)

    def advance(self, saga: Saga, step: str, state: dict[str, Any] | None = None) -> Saga:
        """Move a running saga to its next step, replacing the state when one is given."""
        return self._move(saga, "running", step, state, allowed=("running",))

    def complete(self, saga: Saga, state: dict[str, Any] | None = None) -> Saga:
        return self._move(saga, "completed", saga.step, state, allowed=("running",))

    def compensate(self, saga: Saga, step: str, state: dict[str, Any] | None = None) -> Saga:
        """Start (or continue with) undoing: ``step`` names the compensation being run."""
        return self._move(saga, "compensating", step, state, allowed=("running", "compensating"))

    def compensated(self, saga: Saga, state: dict[str, Any] | None = None) -> Saga:
        return self._move(saga, "compensated", saga.step, state, allowed=("compensating",))

    def fail(self, saga: Saga, reason: str) -> Saga:
        """Stop an open saga for good, keeping the reason in its state."""
        state = {**saga.state, "failure": reason}
        return self._move(saga, "failed", saga.step, state, allowed=tuple(OPEN))

    def _move(
        self,
        saga: Saga,
        status: SagaStatus,
        step: str,
        state: dict[str, Any] | None,
        *,
        allowed: tuple[str, ...],
    ) -> Saga:
        new_state = saga.state if state is None else state
        finished = status not in OPEN
        with connection(self._source) as conn, conn.transaction():
            cur = conn.cursor(row_factory=class_row(Saga))
            moved = cur.execute(
                _UPDATE,
                (
                    status,
                    step,
                    jsonb(new_state),
                    finished,
                    saga.saga_id,
                    saga.version,
                    list(allowed),
                ),
            ).fetchone()
            if moved is not None:
                return moved
            current = self._get(conn, saga.saga_id)
        if current.version != saga.version:
            raise ConcurrencyError("saga", str(saga.saga_id), saga.version, current.version)
        raise SagaTransitionError(
            f"saga {saga.saga_id} is {current.status}; cannot go to {status} "
            f"(allowed from: {', '.join(allowed)})"
        )

    @staticmethod
    def _get(conn: psycopg.Connection[Any], saga_id: uuid.UUID) -> Saga:
        cur = conn.cursor(row_factory=class_row(Saga))
        saga = cur.execute(_SELECT, (saga_id,)).fetchone()
        if saga is None:
            raise EventStoreError(f"no saga {saga_id}")
        return saga
