"""Errors raised by the event store, with messages that say what to do next."""

from __future__ import annotations

from dataclasses import dataclass


class EventStoreError(RuntimeError):
    """Base class: something the event store refused to do."""


class ConcurrencyError(EventStoreError):
    """A writer's view of a stream (aggregate or saga) was stale: someone else wrote first.

    Reload and retry; the message names the stream and both versions, like message-db's
    ``Wrong expected version``.
    """

    def __init__(self, kind: str, stream_id: str, expected: int | None, actual: int) -> None:
        self.kind = kind
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        wanted = "any version" if expected is None else f"version {expected}"
        super().__init__(
            f"Wrong expected version for {kind} {stream_id!r}: expected {wanted}, "
            f"actual version {actual}"
        )


@dataclass(frozen=True, slots=True)
class FieldError:
    """One failed JSON Schema rule: where (dotted path), which keyword, and why."""

    path: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.rule}: {self.message}"


class EventValidationError(EventStoreError, ValueError):
    """An event does not match its registered JSON Schema (or has none)."""

    def __init__(self, event_type: str, schema_version: int, errors: list[FieldError]) -> None:
        self.event_type = event_type
        self.schema_version = schema_version
        self.errors = errors
        details = "; ".join(str(e) for e in errors)
        super().__init__(f"{event_type} v{schema_version} is invalid: {details}")


class SchemaConflictError(EventStoreError):
    """A (type, version) is already registered with a different schema; versions are immutable."""
