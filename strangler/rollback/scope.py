"""What a rollback is asked to cover (light: the CLI validates it before any store loads)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from strangler.rollback.services import resolve_services


@dataclass(frozen=True)
class Scope:
    """What was asked: services, and days as a range, or "after T", or "code version > V"."""

    services: tuple[str, ...]
    from_day: str | None = None
    to_day: str | None = None
    after: datetime | None = None
    code_version: str | None = None

    def __post_init__(self) -> None:
        if (self.from_day is None) != (self.to_day is None):
            raise ValueError("give both --from and --to, or neither")
        if self.from_day is None and self.after is None and self.code_version is None:
            raise ValueError("give a partition range, a timestamp, or a code version")
        if (
            self.from_day is not None
            and self.to_day is not None
            and date.fromisoformat(self.to_day) < date.fromisoformat(self.from_day)
        ):
            raise ValueError(f"--to {self.to_day} is before --from {self.from_day}")


def scope_of(
    services: list[str] | tuple[str, ...],
    *,
    from_day: str | None = None,
    to_day: str | None = None,
    after: datetime | None = None,
    code_version: str | None = None,
) -> Scope:
    return Scope(resolve_services(services), from_day, to_day, after, code_version)
