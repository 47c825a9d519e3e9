"""Progress of a long partition run: counts, rate and ETA, reported every few seconds."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


@dataclass
class Progress:
    total: int
    processed: int = 0
    failed: int = 0
    events: int = 0
    started: float = field(default_factory=time.monotonic)
    report_every_s: float = 5.0
    _last_report: float = field(default=0.0)

    @property
    def elapsed_s(self) -> float:
        return max(time.monotonic() - self.started, 1e-9)

    @property
    def rate(self) -> float:
        """Source rows per second so far."""
        return (self.processed + self.failed) / self.elapsed_s

    @property
    def eta(self) -> datetime | None:
        remaining = self.total - self.processed - self.failed
        if remaining <= 0 or self.rate <= 0:
            return None
        return datetime.now(UTC) + timedelta(seconds=remaining / self.rate)

    def describe(self) -> str:
        done = self.processed + self.failed
        pct = 100.0 * done / self.total if self.total else 100.0
        eta = self.eta
        eta_text = f", ETA {eta:%H:%M:%S}" if eta else ""
        return (
            f"{done}/{self.total} rows ({pct:.0f}%), {self.failed} failed, {self.events} events, "
            f"{self.rate:.0f} rows/s{eta_text}"
        )

    def maybe_report(self, report: Callable[[str], None], force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_report >= self.report_every_s:
            self._last_report = now
            report(self.describe())
