"""Alerting: each newly failed asset check evaluation is posted once to a webhook as JSON.

State lives in the sensor cursor: the last check execution id read and the (check,
partition) pairs currently failing. A pair alerts when it turns from not-failing to failing
and re-arms when it passes again, so a check failing on every tick alerts once.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

_BATCH = 1_000


@dataclass(frozen=True)
class Evaluation:
    storage_id: int
    asset_key: str
    check_name: str
    partition: str | None
    passed: bool
    severity: str
    description: str
    metadata: dict[str, Any]
    run_id: str

    @property
    def pair(self) -> str:
        return f"{self.asset_key}:{self.check_name}|{self.partition or ''}"

    def payload(self) -> dict[str, Any]:
        return {
            "kind": "asset_check_failed",
            "asset_key": self.asset_key,
            "check_name": self.check_name,
            "partition": self.partition,
            "severity": self.severity,
            "description": self.description,
            "metadata": self.metadata,
            "run_id": self.run_id,
        }


@dataclass
class AlertState:
    after: int | None = None
    failing: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, cursor: str | None) -> AlertState:
        if not cursor:
            return cls()
        doc = json.loads(cursor)
        return cls(doc.get("after"), set(doc.get("failing", [])))

    def dump(self) -> str:
        return json.dumps({"after": self.after, "failing": sorted(self.failing)})


def _plain(value: Any) -> Any:
    inner = getattr(value, "value", value)
    try:
        json.dumps(inner)
        return inner
    except TypeError:
        return str(inner)


def new_evaluations(
    instance: dg.DagsterInstance, check_keys: Iterable[dg.AssetCheckKey], after: int | None
) -> list[Evaluation]:
    """Executions of these checks recorded after execution id `after`, oldest first.

    Finished executions only (a planned or running one has no verdict yet).
    """
    out = []
    for key in check_keys:
        records = instance.event_log_storage.get_asset_check_execution_history(key, limit=_BATCH)
        for r in records:
            if after is not None and r.id <= after:
                break
            data: Any = (
                r.event.dagster_event.event_specific_data
                if r.event and r.event.dagster_event
                else None
            )
            if data is None or not hasattr(data, "passed"):
                continue
            out.append(
                Evaluation(
                    storage_id=r.id,
                    asset_key=key.asset_key.to_user_string(),
                    check_name=key.name,
                    partition=r.partition,
                    passed=bool(data.passed),
                    severity=getattr(data.severity, "value", str(data.severity)),
                    description=data.description or "",
                    metadata={k: _plain(v) for k, v in (data.metadata or {}).items()},
                    run_id=r.run_id,
                )
            )
    return sorted(out, key=lambda e: e.storage_id)


def post_json(url: str, payload: dict[str, Any], timeout_s: float) -> None:
    """POST one JSON document; raises on a non-2xx answer or a network error."""
    body = json.dumps(payload, default=str).encode()
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 (configured URL)
        if not 200 <= response.status < 300:
            raise RuntimeError(f"webhook answered HTTP {response.status}")


def process(
    records: Sequence[Evaluation],
    state: AlertState,
    *,
    url: str | None,
    timeout_s: float = 10.0,
    log: Callable[[str], None] = lambda _m: None,
    post: Callable[[str, dict[str, Any], float], None] = post_json,
) -> int:
    """Advance the state over `records`; returns alerts posted.

    A failed post stops here without advancing past that record, so the next tick retries it.
    """
    sent = 0
    for e in records:
        if e.passed:
            state.failing.discard(e.pair)
        elif e.pair not in state.failing:
            if url:
                try:
                    post(url, e.payload(), timeout_s)
                except Exception as exc:  # retried next tick; the cursor stays before it
                    log(f"alert for {e.pair} not delivered ({exc!r}); retrying next tick")
                    return sent
                sent += 1
            else:
                log(f"check failed (no STRANGLER_ALERT_WEBHOOK_URL set): {e.pair}")
            state.failing.add(e.pair)
        state.after = e.storage_id
    return sent
