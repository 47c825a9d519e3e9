"""DayFold spills to disk: same objects, order and counts as the in-memory fold it replaced,
chunked without changing them, and no temporary file outlives the fold."""

from __future__ import annotations

import gc
import random
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from strangler.migration.kafka_records import EventRecord
from strangler.search.objects import (
    CREATION_EVENTS,
    DayFold,
    SearchObject,
    Skipped,
    _build,
    _stream_order,
)

DAY = "2025-01-02"
_EVENTS = {
    "Customer": ["CustomerRegistered", "CustomerUpdated"],
    "Document": ["DocumentUploaded", "DocumentStatusChanged"],
    "OcrPage": ["OcrPageExtracted", "OcrPageCorrected"],
}


def _records(n: int, seed: int = 3) -> list[EventRecord]:
    """Mixed ids (numeric, zero-padded, non-numeric), version ties, other days, orphans."""
    rng = random.Random(seed)
    at = datetime(2025, 1, 2, tzinfo=UTC)
    out = []
    for i in range(n):
        atype = rng.choice(sorted(_EVENTS))
        aid = rng.choice(
            [str(rng.randint(0, 40)), f"0{rng.randint(0, 9)}", f"x{rng.randint(0, 5)}"]
        )
        out.append(
            EventRecord(
                event_id=uuid.UUID(int=rng.getrandbits(128)),
                event_type=rng.choice(_EVENTS[atype]),
                schema_version=1,
                aggregate_type=atype,
                aggregate_id=aid,
                aggregate_version=rng.randint(1, 3),
                occurred_at=at,
                partition_day=DAY if rng.random() < 0.9 else "2025-01-01",
                payload={
                    "customer_id": rng.choice([1, "2", None, 3.5]),
                    "document_id": rng.choice([1, 2, None]),
                    "name": f"n{i}",
                    "text": f"page {i}",
                    "status": rng.choice(["processed", "failed"]),
                    "nested": {"k": [i, None]},
                },
                metadata={},
                position=rng.randint(0, 5),
                topic="t",
                kafka_partition=0,
                offset=i,
            )
        )
    return out


def _reference(
    records: list[EventRecord], day: str
) -> tuple[dict[str, list[SearchObject]], list[Skipped], int, int]:
    """The fold as it was before it spilled: everything in a dict."""
    streams: dict[tuple[str, str], dict[uuid.UUID, EventRecord]] = {}
    events = duplicates = 0
    for r in records:
        if r.aggregate_type not in CREATION_EVENTS or r.partition_day != day:
            continue
        stream = streams.setdefault((r.aggregate_type, r.aggregate_id), {})
        if r.event_id in stream:
            duplicates += 1
            continue
        stream[r.event_id] = r
        events += 1
    out: dict[str, list[SearchObject]] = {t: [] for t in CREATION_EVENTS}
    skipped: list[Skipped] = []
    for (atype, aid), stream in sorted(streams.items(), key=_stream_order):
        ordered = sorted(stream.values(), key=lambda r: (r.aggregate_version, r.position))
        event_ids = tuple(r.event_id for r in ordered)
        if not any(r.event_type in CREATION_EVENTS[atype] for r in ordered):
            reason = f"no {sorted(CREATION_EVENTS[atype])} event on {day}"
            skipped.append(Skipped(atype, aid, reason, event_ids))
            continue
        out[atype].append(_build(atype, aid, ordered, day, event_ids))  # type: ignore[arg-type]
    return out, skipped, events, duplicates


def test_spilled_fold_matches_the_in_memory_fold_in_any_chunking() -> None:
    records = _records(600)
    redelivered = records + records[:150] + records[400:420]
    expected, skipped, events, duplicates = _reference(redelivered, DAY)
    with DayFold(DAY) as fold:
        fold.add(records)
        fold.add(records[:150])
        fold.add(iter(records[400:420]))
        assert (fold.events, fold.duplicates) == (events, duplicates) and duplicates > 100
        objects, got_skipped = fold.objects()
        assert objects == expected
        assert got_skipped == skipped and skipped
        for atype, objs in expected.items():
            assert fold.count(atype) == len(objs)
            for size in (1, 7, 1000):
                chunks = list(fold.chunks(atype, size))
                assert all(0 < len(c) <= size for c in chunks)
                assert [o for c in chunks for _t, o in c] == objs
                assert all(t is None for c in chunks for t, _o in c)
            assert list(fold.keys(atype, 5)) == [(o.aggregate_id, o.event_ids) for o in objs]


def test_chunks_by_tenant_are_grouped_stably_and_leave_out_the_unplaced() -> None:
    with DayFold(DAY) as fold:
        fold.add(_records(400, seed=11))
        pages = list(fold.stream("OcrPage"))
        tenants = {o.aggregate_id: f"customer-{i % 3}" for i, o in enumerate(pages) if i % 5}
        fold.assign_tenants("OcrPage", tenants.items())
        got = [(t, o) for c in fold.chunks("OcrPage", 4, by_tenant=True) for t, o in c]
        expected = sorted(
            ((tenants[o.aggregate_id], o) for o in pages if o.aggregate_id in tenants),
            key=lambda p: p[0],
        )
        assert got == expected
        fold.clear_tenants("OcrPage")
        assert list(fold.chunks("OcrPage", 4, by_tenant=True)) == []


def _spills(tmp: Path) -> list[Path]:
    return sorted(tmp.glob("strangler-dayfold-*"))


def test_no_temporary_file_outlives_the_fold(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    with DayFold(DAY) as fold:
        fold.add(_records(50))
        assert fold.path.parent == tmp_path and _spills(tmp_path) == [fold.path]
        list(fold.chunks("OcrPage", 3))
    assert fold.closed and _spills(tmp_path) == []
    fold.close()  # idempotent
    dropped = DayFold(DAY)
    dropped.add(_records(20))
    assert len(_spills(tmp_path)) == 1
    del dropped
    gc.collect()
    assert _spills(tmp_path) == []
    assert list(tmp_path.iterdir()) == []
