"""DayFold spills to disk: same objects, order and counts as an in-memory fold of the same
records, chunked without changing them, and no temporary file outlives the fold."""

from __future__ import annotations

import gc
import random
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from strangler.migration.kafka_records import EventRecord
from strangler.search.objects import (
    DayFold,
    SearchObject,
    _Record,
    _stream_order,
    build,
    row_of,
)
from strangler.search.schema import CollectionNames, declare
from strangler.spec import parse_spec
from tests.unit.test_search_pure import COLUMNS, SPEC

DAY = "2025-01-02"
DECLS = declare(parse_spec(SPEC), CollectionNames(), COLUMNS)
BY_NAME = {d.aggregate: d for d in DECLS}
_EVENTS = {
    "Author": ["AuthorImported", "AuthorChanged", "AuthorRenamed", "AuthorDeleted"],
    "Post": ["PostImported", "PostChanged", "PostDeleted", "CommentImported", "CommentDeleted"],
    "Other": ["Unrelated"],
}


def _records(n: int, seed: int = 3) -> list[EventRecord]:
    """Mixed ids (numeric, zero-padded, non-numeric), folded rows, version ties, deletes,
    other days and streams."""
    rng = random.Random(seed)
    at = datetime(2025, 1, 2, tzinfo=UTC)
    out = []
    for i in range(n):
        stream = rng.choice(sorted(_EVENTS))
        sid = rng.choice(
            [str(rng.randint(0, 40)), f"0{rng.randint(0, 9)}", f"x{rng.randint(0, 5)}"]
        )
        etype = rng.choice(_EVENTS[stream])
        source = f"{sid}|{rng.randint(1, 3)}" if etype.startswith("Comment") else sid
        out.append(
            EventRecord(
                event_id=uuid.UUID(int=rng.getrandbits(128)),
                event_type=etype,
                schema_version=1,
                aggregate_type=stream,
                aggregate_id=sid,
                aggregate_version=rng.randint(1, 3),
                occurred_at=at,
                partition_day=DAY if rng.random() < 0.9 else "2025-01-01",
                payload={
                    "author_id": rng.choice([1, "2", None, 3.5]),
                    "post_no": rng.choice([1, 2, None]),
                    "name": f"n{i}",
                    "body": f"text {i}",
                    "team_code": rng.choice(["NL", None]),
                    "profile": {"k": [i, None]},
                },
                metadata={"source_id": source} if rng.random() < 0.8 else {},
                position=rng.randint(0, 5),
                topic="t",
                kafka_partition=0,
                offset=i,
            )
        )
    return out


def _reference(
    records: list[EventRecord], day: str
) -> tuple[dict[str, list[SearchObject]], dict[str, list[str]], int, int]:
    """The fold kept in a dict: objects per aggregate, deleted rows, events, duplicates."""
    routes = {
        (d.stream_type, t): (d.aggregate, t in d.delete_events)
        for d in DECLS
        for t in d.upsert_events | d.delete_events
    }
    rows: dict[tuple[str, str], dict[uuid.UUID, EventRecord]] = {}
    events = duplicates = 0
    for r in records:
        route = routes.get((r.aggregate_type, r.event_type))
        if route is None or r.partition_day != day:
            continue
        row = rows.setdefault((route[0], row_of(r)), {})
        if r.event_id in row:
            duplicates += 1
            continue
        row[r.event_id] = r
        events += 1
    out: dict[str, list[SearchObject]] = {d.aggregate: [] for d in DECLS}
    deleted: dict[str, list[str]] = {d.aggregate: [] for d in DECLS}
    for (aggregate, row_id), row in sorted(rows.items(), key=_stream_order):
        ordered = sorted(row.values(), key=lambda r: (r.aggregate_version, r.position))
        if any(routes[(r.aggregate_type, r.event_type)][1] for r in ordered):
            deleted[aggregate].append(row_id)
            continue
        records_ = [
            _Record(r.event_id, r.event_type, r.aggregate_version, r.position, r.payload)
            for r in ordered
        ]
        out[aggregate].append(build(BY_NAME[aggregate], row_id, records_, day))
    return out, deleted, events, duplicates


def test_spilled_fold_matches_the_in_memory_fold_in_any_chunking() -> None:
    records = _records(600)
    redelivered = records + records[:150] + records[400:420]
    expected, deleted, events, duplicates = _reference(redelivered, DAY)
    with DayFold(DAY, DECLS) as fold:
        fold.add(records)
        fold.add(records[:150])
        fold.add(iter(records[400:420]))
        assert (fold.events, fold.duplicates) == (events, duplicates) and duplicates > 100
        assert all(expected.values()) and all(deleted.values())
        for aggregate, objs in expected.items():
            assert fold.count(aggregate) == len(objs)
            for size in (1, 7, 1000):
                chunks = list(fold.chunks(aggregate, size))
                assert all(0 < len(c) <= size for c in chunks)
                assert [o for c in chunks for _t, o in c] == objs
                assert all(t is None for c in chunks for t, _o in c)
            assert list(fold.keys(aggregate, 5)) == [(o.row_id, o.event_ids) for o in objs]
            assert [r for r, _e in fold.keys(aggregate, deleted=True)] == deleted[aggregate]


def test_chunks_by_tenant_are_grouped_stably_and_leave_out_the_unplaced() -> None:
    with DayFold(DAY, DECLS) as fold:
        fold.add(_records(400, seed=11))
        posts = list(fold.stream("Post"))
        tenants = {o.row_id: f"t{i % 3}" for i, o in enumerate(posts) if i % 5}
        fold.assign_tenants("Post", tenants.items())
        got = [(t, o) for c in fold.chunks("Post", 4, by_tenant=True) for t, o in c]
        expected = sorted(
            ((tenants[o.row_id], o) for o in posts if o.row_id in tenants),
            key=lambda p: p[0],
        )
        assert got == expected
        fold.clear_tenants("Post")
        assert list(fold.chunks("Post", 4, by_tenant=True)) == []


def _spills(tmp: Path) -> list[Path]:
    return sorted(tmp.glob("strangler-dayfold-*"))


def test_no_temporary_file_outlives_the_fold(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    with DayFold(DAY, DECLS) as fold:
        fold.add(_records(50))
        assert fold.path.parent == tmp_path and _spills(tmp_path) == [fold.path]
        list(fold.chunks("Post", 3))
    assert fold.closed and _spills(tmp_path) == []
    fold.close()  # idempotent
    dropped = DayFold(DAY, DECLS)
    dropped.add(_records(20))
    assert len(_spills(tmp_path)) == 1
    del dropped
    gc.collect()
    assert _spills(tmp_path) == []
    assert list(tmp_path.iterdir()) == []
