"""Smoke test of the whole-chain benchmark: a tiny partition through every stage.

Not a performance test (nothing is timed against a threshold): it proves `bench_chain` runs
end to end on the spec path against the real services and writes the JSON rows the issue asks
for, one per stage, with figures that are positive numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.bench_chain import STAGES, main

pytestmark = pytest.mark.integration

KEYS = {"stage", "events", "events_per_s", "baseline_per_s", "ratio", "peak_rss_mib"}


def test_bench_chain_writes_one_row_per_stage(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    main(
        [
            "--events",
            "200",
            "--embed-texts",
            "4",
            "--history-rows",
            "60",
            "--history-days",
            "3",
            "--json",
            str(out),
        ]
    )
    rows = json.loads(out.read_text())
    assert [r["stage"] for r in rows] == list(STAGES)
    for row in rows:
        assert set(row) == KEYS, row
        assert isinstance(row["events"], int) and row["events"] > 0, row
        for key in ("events_per_s", "baseline_per_s", "ratio", "peak_rss_mib"):
            assert isinstance(row[key], int | float) and row[key] > 0, row
    by_stage = {r["stage"]: r for r in rows}
    # The relay publishes what the event store wrote; ClickHouse holds exactly those events.
    assert by_stage["relay"]["events"] == by_stage["event_store"]["events"]
    assert by_stage["clickhouse"]["events"] == by_stage["event_store"]["events"]
    assert by_stage["embedding"]["events"] == 4
