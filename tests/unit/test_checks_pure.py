"""Pure parts of the consistency checks: bisecting diff, rendering, CLI ranges, sensors' logic,
the webhook alert (against a real local HTTP server), and the checks' Dagster wiring."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import dagster as dg
import pytest
import typer

from strangler.checks import alerts
from strangler.checks.cli import partition_range
from strangler.checks.consistency import (
    check_sensors,
    consistency_check_keys,
    consistency_checks,
    evaluations,
    next_partition,
)
from strangler.checks.diff import BucketSum, bisect_diff, summarize_ids
from strangler.checks.outcome import CheckOutcome
from strangler.checks.report import render
from strangler.settings import get_settings
from strangler.spec import current_spec


class MemorySide:
    """A side held in memory, counting how many ids it had to list."""

    def __init__(self, ids: Sequence[str], label: str) -> None:
        self.all = list(ids)
        self.label = label
        self.listed = 0
        self.summaries = 0

    def summarize(self, depth: int, prefixes: Sequence[str] | None) -> dict[str, BucketSum]:
        self.summaries += 1
        return summarize_ids(self.all, depth, prefixes)

    def ids(self, prefixes: Sequence[str]) -> Counter[str]:
        found = Counter(i for i in self.all if i.startswith(tuple(prefixes)))
        self.listed += sum(found.values())
        return found


def _ids(n: int, seed: int = 1) -> list[str]:
    return [str(uuid.uuid5(uuid.UUID(int=seed), str(i))) for i in range(n)]


def test_equal_sides_cost_one_grouped_pass_each() -> None:
    ids = _ids(20_000)
    left, right = MemorySide(ids, "l"), MemorySide(list(reversed(ids)), "r")
    result = bisect_diff(left, right, start_depth=2, leaf_rows=100)
    assert result.equal and result.levels == 1
    assert left.summaries == right.summaries == 1 and left.listed == right.listed == 0


def test_bisect_names_missing_extra_and_duplicated_listing_few_ids() -> None:
    ids = _ids(50_000)
    missing, duplicate = ids[123], ids[4567]
    extra = str(uuid.uuid4())
    right_ids = [i for i in ids if i != missing] + [extra, duplicate]
    left, right = MemorySide(ids, "l"), MemorySide(right_ids, "r")
    result = bisect_diff(left, right, start_depth=1, leaf_rows=200)
    assert result.missing == [missing]
    assert result.extra == [extra]
    assert result.duplicated == [duplicate]
    assert result.levels > 1
    assert left.listed < 1_000  # only the few small differing buckets were listed
    assert result.culprits(10) == [
        f"missing:{missing}",
        f"extra:{extra}",
        f"duplicated:{duplicate}",
    ]


def test_outcome_renders_in_every_format() -> None:
    o = CheckOutcome(
        "kafka.matches_event_store",
        "kafka",
        "2026-01-02",
        passed=False,
        description="d",
        target="documents.events",
        left_label="event_store",
        right_label="kafka",
        left_count=3,
        right_count=2,
        offending=["missing:x|y"],
    )
    doc = json.loads(render([o], "json"))
    assert (
        doc[0]["status"] == "failed"
        and doc[0]["key"] == "kafka.matches_event_store[documents.events]"
    )
    md = render([o], "markdown")
    assert "missing:x\\|y" in md and "1 checks, 1 not passed." in md
    assert "FAILED" in o.summary()


def test_partition_range() -> None:
    from datetime import date

    assert partition_range(date(2026, 1, 2), None, None) == ["2026-01-02"]
    assert partition_range(None, date(2026, 1, 30), date(2026, 2, 1)) == [
        "2026-01-30",
        "2026-01-31",
        "2026-02-01",
    ]
    with pytest.raises(typer.BadParameter):
        partition_range(None, date(2026, 2, 1), date(2026, 1, 1))
    with pytest.raises(typer.BadParameter):
        partition_range(date(2026, 1, 1), date(2026, 1, 1), None)


def test_reconciliation_walks_recent_partitions_round_robin() -> None:
    recent = ["2026-01-01", "2026-01-02", "2026-01-03"]
    seen = []
    cursor = None
    for _ in range(4):
        cursor = next_partition(cursor, recent)
        seen.append(cursor)
    assert seen == ["2026-01-03", "2026-01-02", "2026-01-01", "2026-01-03"]
    assert next_partition(None, []) is None


def test_outcomes_map_to_declared_checks() -> None:
    """The runner records each outcome's asset; only declared (asset, check) pairs report."""
    declared = [
        dg.AssetCheckKey(dg.AssetKey(["kafka", "orders"]), "keys_ordered"),
        dg.AssetCheckKey(dg.AssetKey(["weaviate", "Order"]), "vectors_complete"),
    ]
    outcomes = [
        CheckOutcome(
            "kafka.keys_ordered", "kafka", "2026-01-02", True, "", asset=("kafka", "orders")
        ),
        CheckOutcome(
            "weaviate.vectors_complete",
            "weaviate",
            "2026-01-02",
            False,
            "",
            asset=("weaviate", "Order"),
        ),
        CheckOutcome(
            "event_store.runnable",
            "event-store",
            "2026-01-02",
            False,
            "",
            asset=("event_store", "events"),
        ),
        CheckOutcome("kafka.fresh", "kafka", "2026-01-02", True, ""),
    ]
    evs = evaluations(outcomes, declared)
    assert [(e.asset_key.to_user_string(), e.check_name, e.partition) for e in evs] == [
        ("kafka/orders", "keys_ordered", "2026-01-02"),
        ("weaviate/Order", "vectors_complete", "2026-01-02"),
    ]


def _defs() -> dg.Definitions:
    """The code location's definitions (the checks and sensors as wired there)."""
    from strangler.definitions import build_definitions
    from strangler.settings import get_settings
    from strangler.spec import current_spec

    return build_definitions(current_spec(), get_settings())


def test_checks_and_sensors_load_with_the_assets() -> None:
    defs = _defs()
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    declared = set(consistency_check_keys(current_spec()))
    assert declared <= set(graph.asset_check_keys)
    for key in declared:
        assert key.asset_key in graph.get_all_asset_keys()
    for checks_def in consistency_checks:
        for spec in checks_def.check_specs:
            assert spec.partitions_def == graph.get(spec.asset_key).partitions_def
    sensors = {s.name for s in defs.sensors or []}
    assert {s.name for s in check_sensors} <= sensors


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Hook.received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Hook.received = []
    monkeypatch.setenv("STRANGLER_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{server.server_port}/hook")
    get_settings.cache_clear()
    try:
        yield _Hook.received
    finally:
        server.shutdown()
        get_settings.cache_clear()


def _report(instance: dg.DagsterInstance, passed: bool, partition: str) -> None:
    """One evaluation in a run of its own (as each check run or sensor tick records it)."""
    from dagster._core.events import DagsterEvent, DagsterEventType

    evaluation = dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey(["clickhouse", "events"]),
        check_name="matches_event_store",
        passed=passed,
        metadata={"offending_keys": dg.JsonMetadataValue(["missing:abc"])},
        partition=partition,
    )
    instance.report_dagster_event(
        DagsterEvent(
            event_type_value=DagsterEventType.ASSET_CHECK_EVALUATION.value,
            job_name="__ASSET_JOB",
            event_specific_data=evaluation,
        ),
        run_id=str(uuid.uuid4()),
    )


def test_alert_sensor_posts_each_new_failure_once(webhook: list[dict[str, Any]]) -> None:
    defs = _defs()
    alert_sensor = next(s for s in check_sensors if s.name == "check_failure_alerts")
    with dg.instance_for_test() as instance:

        def tick(cursor: str | None) -> str | None:
            ctx = dg.build_sensor_context(
                instance=instance,
                cursor=cursor,
                definitions=defs,
            )
            alert_sensor.evaluate_tick(ctx)
            return ctx.cursor

        _report(instance, False, "2026-01-02")
        cursor = tick(None)
        assert len(webhook) == 1
        assert webhook[0]["check_name"] == "matches_event_store"
        assert webhook[0]["partition"] == "2026-01-02"
        assert webhook[0]["metadata"]["offending_keys"] == ["missing:abc"]
        _report(instance, False, "2026-01-02")  # still failing: no second alert
        cursor = tick(cursor)
        cursor = tick(cursor)
        assert len(webhook) == 1
        _report(instance, False, "2026-01-03")  # another partition: its own alert
        _report(instance, True, "2026-01-02")  # passes: re-armed
        _report(instance, False, "2026-01-02")
        tick(cursor)
        assert [(w["partition"]) for w in webhook] == ["2026-01-02", "2026-01-03", "2026-01-02"]


def test_failed_post_is_retried_next_tick() -> None:
    state = alerts.AlertState()
    record = alerts.Evaluation(7, "a/b", "c", "2026-01-02", False, "ERROR", "", {}, "r")
    calls: list[str] = []

    def broken(url: str, payload: dict[str, Any], timeout: float) -> None:
        calls.append(url)
        raise OSError("down")

    assert alerts.process([record], state, url="http://x", post=broken) == 0
    assert state.after is None and not state.failing
    assert alerts.process([record], state, url="http://x", post=lambda *a: None) == 1
    assert state.after == 7 and state.failing == {"a/b:c|2026-01-02"}
