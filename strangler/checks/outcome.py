"""The result of one check on one partition: what a person needs to act on it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["ERROR", "WARN"]


@dataclass
class CheckOutcome:
    """One check, one partition, one target (a topic, a collection, a table, or the day).

    `name` is stable (`<system>.<check>`), `target` says which store object it looked at;
    `offending` lists the first few culprits (event ids, aggregate keys, partitions);
    `reproduce` is SQL or a command that shows the same numbers by hand.
    """

    name: str
    system: str
    partition_key: str
    passed: bool
    description: str
    target: str = ""
    left_label: str = ""
    right_label: str = ""
    left_count: int | None = None
    right_count: int | None = None
    offending: list[str] = field(default_factory=list)
    reproduce: str = ""
    severity: Severity = "ERROR"
    details: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    asset: tuple[str, ...] = ()
    """The asset path of the unit it checked (set by the runner; empty for a check that
    could not run on a declared unit)."""

    @property
    def key(self) -> str:
        return f"{self.name}[{self.target}]" if self.target else self.name

    @property
    def status(self) -> str:
        if self.passed:
            return "passed"
        return "failed" if self.severity == "ERROR" else "warning"

    def summary(self) -> str:
        counts = ""
        if self.left_count is not None or self.right_count is not None:
            counts = f" {self.left_label}={self.left_count} {self.right_label}={self.right_count}"
        culprits = f" culprits: {', '.join(self.offending[:5])}" if self.offending else ""
        return f"{self.status.upper()} {self.key} {self.partition_key}:{counts}{culprits}"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["key"] = self.key
        out["status"] = self.status
        return out

    def metadata(self) -> dict[str, Any]:
        """Plain values for Dagster metadata (the Dagster layer wraps them)."""
        meta: dict[str, Any] = {
            "partition": self.partition_key,
            "target": self.target,
            "description": self.description,
            "offending_keys": list(self.offending),
            "reproduce": self.reproduce,
            "duration_s": round(self.duration_s, 3),
        }
        if self.left_label:
            meta[f"count_{self.left_label}"] = self.left_count
        if self.right_label:
            meta[f"count_{self.right_label}"] = self.right_count
        meta.update({f"detail_{k}": v for k, v in self.details.items()})
        return meta
