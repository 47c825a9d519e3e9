"""Is a partition live, or did a rollback empty it after its last materialization?

Open-source Dagster cannot delete partition history, so a rollback is recorded forward: an
observation marks the partition rolled back (or restored, after an undo), and the partition is
live again once a materialization is newer than the latest mark.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class RollbackMark:
    """The latest rollback observation of a partition."""

    timestamp: float
    rolled_back: bool
    rollback_id: str | None


@dataclass(frozen=True)
class Liveness:
    passed: bool
    description: str
    rollback_id: str | None = None


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def liveness(last_materialized: float | None, mark: RollbackMark | None) -> Liveness:
    """Failed while the newest rollback mark says "rolled back" and no materialization followed."""
    if mark is None:
        return Liveness(True, "Never rolled back.")
    if not mark.rolled_back:
        return Liveness(
            True,
            f"Restored from rollback {mark.rollback_id} at {_when(mark.timestamp)}.",
            mark.rollback_id,
        )
    if last_materialized is not None and last_materialized > mark.timestamp:
        return Liveness(
            True,
            f"Rolled back by {mark.rollback_id} at {_when(mark.timestamp)}, "
            f"re-materialized at {_when(last_materialized)}.",
            mark.rollback_id,
        )
    return Liveness(
        False,
        f"Rolled back by {mark.rollback_id} at {_when(mark.timestamp)}; this partition holds no "
        "data until it is re-materialized (or the rollback is undone).",
        mark.rollback_id,
    )
