"""Pure parts of the event store and migrations: URL conversion, error messages, folds, checks."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from strangler.db.migrations import MigrationError, yoyo_url
from strangler.event_store.copy_text import encode
from strangler.event_store.errors import ConcurrencyError, EventValidationError, FieldError
from strangler.event_store.model import EVENT_NAMESPACE, NewEvent, RecordedEvent, event_id_for
from strangler.event_store.registry import field_errors
from strangler.event_store.store import (
    _check_ascending,
    _check_consecutive,
    _dedupe,
    default_topic,
)
from strangler.migration.folds import spec_folds
from strangler.settings import SAMPLE_SPEC
from strangler.spec import load_spec
from tests.schemas.shop import SPEC as SHOP_SPEC

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("url", "password", "expected"),
    [
        (
            "postgresql://strangler@127.0.0.1:54329/strangler",
            None,
            "postgresql+psycopg://strangler@127.0.0.1:54329/strangler",
        ),
        (
            "postgres://u:p@db/app?sslmode=require",
            None,
            "postgresql+psycopg://u:p@db/app?sslmode=require",
        ),
        ("postgresql://u@h:5432/d", "s3cr/t@!", "postgresql+psycopg://u:s3cr%2Ft%40%21@h:5432/d"),
        ("postgresql://u:old@h/d", "new", "postgresql+psycopg://u:new@h/d"),
        ("postgresql+psycopg://u@h/d", None, "postgresql+psycopg://u@h/d"),
    ],
)
def test_yoyo_url(url: str, password: str | None, expected: str) -> None:
    assert yoyo_url(url, password) == expected


@pytest.mark.parametrize(
    ("url", "password", "message"),
    [
        ("mysql://u@h/d", None, "not a Postgres URL"),
        ("postgresql://u@h:5432", None, "names no database"),
        ("postgresql://h:5432/d", "pw", "names no user"),
    ],
)
def test_yoyo_url_rejects(url: str, password: str | None, message: str) -> None:
    with pytest.raises(MigrationError, match=message):
        yoyo_url(url, password)


def test_concurrency_error_names_stream_and_versions() -> None:
    err = ConcurrencyError("Customer", "cust-7", 3, 5)
    assert str(err) == (
        "Wrong expected version for Customer 'cust-7': expected version 3, actual version 5"
    )
    assert (err.kind, err.stream_id, err.expected, err.actual) == ("Customer", "cust-7", 3, 5)


SCHEMA = {
    "type": "object",
    "required": ["email", "pages"],
    "additionalProperties": False,
    "properties": {
        "email": {"type": "string", "format": "email"},
        "plan": {"enum": ["free", "pro"]},
        "pages": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["n"],
                "properties": {"n": {"type": "integer", "minimum": 1}},
            },
        },
    },
}


def test_field_errors_name_path_rule_and_message() -> None:
    errors = field_errors(SCHEMA, {"plan": "gold", "pages": [{"n": 1}, {"n": 0}, {}]})
    assert [(e.path, e.rule) for e in errors] == [
        ("payload.email", "required"),
        ("payload.pages[1].n", "minimum"),
        ("payload.pages[2].n", "required"),
        ("payload.plan", "enum"),
    ]
    assert errors[1].message == "0 is less than the minimum of 1"


def test_field_errors_check_formats_and_extra_fields() -> None:
    errors = field_errors(SCHEMA, {"email": "not-an-email", "pages": [], "x": 1})
    assert {(e.path, e.rule) for e in errors} == {
        ("payload.email", "format"),
        ("payload", "additionalProperties"),
    }


def test_field_errors_empty_when_valid() -> None:
    assert field_errors(SCHEMA, {"email": "a@b.example", "pages": [{"n": 2}]}) == []


def test_event_validation_error_message() -> None:
    err = EventValidationError(
        "CustomerRegistered",
        2,
        [FieldError("payload.email", "required", "'email' is a required property")],
    )
    assert str(err) == (
        "CustomerRegistered v2 is invalid: payload.email: required: 'email' is a required property"
    )


def test_default_topic_is_snake_case_domain() -> None:
    e = NewEvent(uuid.uuid4(), "OcrPage", "1", 1, "OcrPageExtracted", {}, T0)
    assert default_topic(e) == "ocr_page.events"
    assert default_topic(replace(e, aggregate_type="Customer")) == "customer.events"


def _new(aggregate_id: str, version: int, event_type: str = "CustomerUpdated") -> NewEvent:
    return NewEvent(
        event_id_for("t", aggregate_id, str(version)),
        "Customer",
        aggregate_id,
        version,
        event_type,
        {"v": version},
        T0,
    )


def test_consecutive_versions_required() -> None:
    _check_consecutive([_new("a", 4), _new("a", 5)], expected_version=3)
    _check_consecutive([_new("a", 4), _new("a", 5)], expected_version=None)
    with pytest.raises(ValueError, match="consecutive from 3"):
        _check_consecutive([_new("a", 4)], expected_version=2)
    with pytest.raises(ValueError, match="consecutive"):
        _check_consecutive([_new("a", 1), _new("a", 3)], expected_version=None)


def test_batch_must_ascend_per_aggregate_and_dedupes() -> None:
    _check_ascending([_new("a", 1), _new("b", 5), _new("a", 2)])
    with pytest.raises(ValueError, match="ascending"):
        _check_ascending([_new("a", 2), _new("a", 1)])
    kept = _dedupe(encode(e, "t") for e in [_new("a", 1), _new("a", 1), _new("a", 2)])
    assert [x.event for x in kept] == [_new("a", 1), _new("a", 2)]


def _recorded(version: int, event_type: str, payload: dict[str, object]) -> RecordedEvent:
    at = T0 + timedelta(minutes=version)
    return RecordedEvent(
        version, uuid.uuid4(), "Document", "d", version, event_type, payload, at, at, 1, {}
    )


def _fold(spec_path: object, stream: str) -> Any:
    return {f.aggregate_type: f for f in spec_folds(load_spec(spec_path))}[stream].apply  # type: ignore[arg-type]


def test_generic_fold_state_survives_json_round_trip() -> None:
    apply = _fold(SAMPLE_SPEC, "Document")
    events = [
        _recorded(1, "DocumentUploaded", {"title": "t", "customer_id": 3}),
        _recorded(2, "DocumentStatusChanged", {"status": "ocr"}),
        _recorded(3, "DocumentStatusChanged", {"status": "done"}),
        _recorded(4, "DocumentDeleted", {"id": "d", "hard_delete": True}),
    ]
    full: dict[str, object] = {"id": "d"}
    for e in events:
        full = apply(full, e)
    split: dict[str, object] = {"id": "d"}
    for e in events[:2]:
        split = apply(split, e)
    split = json.loads(json.dumps(split))
    for e in events[2:]:
        split = apply(split, e)
    assert split == full
    assert (full["title"], full["status"], full["deleted"]) == ("t", "done", True)
    assert full["imported_at"] == events[0].occurred_at.isoformat()


def test_folded_children_live_under_their_name_and_leave_on_delete() -> None:
    apply = _fold(SHOP_SPEC, "Order")
    line = {"sku": "A", "quantity": 2}
    state: dict[str, object] = {"id": "o"}
    state = apply(state, _recorded(1, "OrderImported", {"order_no": 1, "total": "9.00"}))
    first = replace(_recorded(2, "OrderLineImported", line), metadata={"source_id": "o|1"})
    state = apply(state, first)
    assert state["order_lines"] == {"o|1": line}
    assert state["total"] == "9.00" and "sku" not in state
    gone = replace(_recorded(3, "OrderLineDeleted", {"id": "o|1"}), metadata={"source_id": "o|1"})
    state = apply(state, gone)
    assert state["order_lines"] == {} and state["deleted"] is False


@pytest.mark.parametrize(
    "parts",
    [
        ("ocr_pages", "12345", "imported"),
        ("order_lines", "7|3", "v2"),
        ("kunden", "ü:€|🙂", "deleted"),
        ("t", "", ""),
        ("documents", "x" * 500, "changed:2024-03-01T10:00:00+00:00"),
    ],
)
def test_event_ids_are_uuid5_of_table_key_change(parts: tuple[str, str, str]) -> None:
    """Stored ids were made by `uuid.uuid5`; the faster builder must give the very same ids."""
    expected = uuid.uuid5(EVENT_NAMESPACE, ":".join(parts))
    assert event_id_for(*parts) == expected
    assert (expected.version, expected.variant) == (5, uuid.RFC_4122)
