"""Rows -> events by a spec, without any service: the sample's events and the shop's."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from jsonschema import Draft202012Validator

from strangler.migration.events import EventBuilder
from strangler.migration.schemas import schemas_by_type
from strangler.migration.source import aggregate_id
from strangler.settings import SAMPLE_SPEC
from strangler.spec import load_spec
from tests.schemas.shop import SPEC as SHOP_SPEC

SAMPLE = load_spec(SAMPLE_SPEC)
SHOP = load_spec(SHOP_SPEC)
NOW = datetime(2026, 11, 23, tzinfo=UTC)
T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)
DAY = "2026-11-20"


def _job(**over: Any) -> dict[str, Any]:
    row = {
        "id": 31,
        "document_id": 11,
        "service": "ocr",
        "status": "completed",
        "attempt": 1,
        "started_at": T0,
        "finished_at": T0 + timedelta(seconds=30),
        "duration_ms": 30_000,
        "error": None,
        "created_at": T0,
        "updated_at": T0 + timedelta(seconds=30),
        "__at_import": T0,
        "__when_0": True,
        "__at_0": T0 + timedelta(seconds=30),
        "__when_1": False,
        "__at_1": T0 + timedelta(seconds=30),
    }
    return {**row, **over}


def _events(spec: Any, name: str, row: dict[str, Any]) -> list[Any]:
    return EventBuilder(spec.aggregate(name), DAY, NOW).row_events(row)


def test_named_events_follow_their_predicates_and_ids_are_deterministic() -> None:
    events = _events(SAMPLE, "ProcessingJob", _job())
    assert [e.event_type for e in events] == ["ProcessingJobStarted", "ProcessingJobCompleted"]
    assert [e.event_id for e in events] == [
        e.event_id for e in _events(SAMPLE, "ProcessingJob", _job())
    ]
    failed = _events(SAMPLE, "ProcessingJob", _job(status="failed", __when_0=False, __when_1=True))
    assert [e.event_type for e in failed] == ["ProcessingJobStarted", "ProcessingJobFailed"]
    assert failed[0].event_id == events[0].event_id
    assert failed[1].event_id != events[1].event_id
    assert events[1].payload["finished_at"] == (T0 + timedelta(seconds=30)).isoformat()
    assert events[0].metadata == {
        "source_table": "processing_jobs",
        "source_id": "31",
        "partition_day": DAY,
    }


def test_every_event_matches_its_compiled_schema() -> None:
    schemas = schemas_by_type(SAMPLE)
    for event in _events(SAMPLE, "ProcessingJob", _job()):
        assert (
            list(Draft202012Validator(schemas[event.event_type]).iter_errors(event.payload)) == []
        )
    broken = dict(_events(SAMPLE, "ProcessingJob", _job(duration_ms=-1))[1].payload)
    assert list(Draft202012Validator(schemas["ProcessingJobCompleted"]).iter_errors(broken))


def _account(**over: Any) -> dict[str, Any]:
    row = {
        "id": uuid.UUID("3f0c0a8e-1b7a-4d8e-9a55-000000000001"),
        "email": "a@shop.test",
        "display_name": "Ada",
        "tier": "plus",
        "country_code": "NL",
        "settings": {"newsletter": True},
        "signed_up_at": T0,
        "modified_at": T0,
        "deleted_at": None,
        "__when_0": False,
        "__at_0": T0,
    }
    return {**row, **over}


def test_generic_import_carries_the_row_state_as_json() -> None:
    events = _events(SHOP, "Account", _account())
    assert [e.event_type for e in events] == ["AccountImported"]
    assert events[0].payload == {
        "id": "3f0c0a8e-1b7a-4d8e-9a55-000000000001",
        "email": "a@shop.test",
        "display_name": "Ada",
        "tier": "plus",
        "country_code": "NL",
        "settings": {"newsletter": True},
        "signed_up_at": T0.isoformat(),
        "modified_at": T0.isoformat(),
        "deleted_at": None,
    }
    assert events[0].occurred_at == T0


def test_soft_delete_and_change_events() -> None:
    builder = EventBuilder(SHOP.aggregate("Account"), DAY, NOW)
    gone = T0 + timedelta(hours=1)
    deleted = builder.row_events(_account(deleted_at=gone))
    assert [e.event_type for e in deleted] == ["AccountImported", "AccountDeleted"]
    assert deleted[1].occurred_at == gone
    stored = deleted[0].payload
    assert builder.change_event(_account(deleted_at=gone), stored) is None
    change = builder.change_event(_account(deleted_at=gone, display_name="Ada L."), stored)
    assert change is not None
    assert change.event_type == "AccountChanged"
    assert change.payload == {"display_name": "Ada L."}
    again = builder.change_event(_account(deleted_at=gone, display_name="Ada L."), stored)
    assert again is not None and again.event_id == change.event_id


def test_composite_keys_and_folded_children_join_the_parent_stream() -> None:
    account = uuid.UUID("3f0c0a8e-1b7a-4d8e-9a55-000000000002")
    line = {
        "account_id": account,
        "order_no": 4,
        "line_no": 2,
        "sku": "SKU-001",
        "quantity": 3,
        "unit_price": Decimal("12.50"),
    }
    aggregate = SHOP.aggregate("OrderLine")
    assert aggregate_id(aggregate, line) == f"{account}|4|2"
    events = EventBuilder(aggregate, DAY, NOW).row_events(line)
    assert [(e.aggregate_type, e.aggregate_id, e.event_type) for e in events] == [
        ("Order", f"{account}|4", "OrderLineImported")
    ]
    assert events[0].payload["unit_price"] == "12.50"
    hard = EventBuilder(aggregate, DAY, NOW).delete_event(
        f"{account}|4|2", None, stream_id=f"{account}|4"
    )
    assert (hard.aggregate_type, hard.aggregate_id, hard.payload) == (
        "Order",
        f"{account}|4",
        {"id": f"{account}|4|2", "hard_delete": True},
    )
