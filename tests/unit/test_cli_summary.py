"""`strangler migrate`'s closing table: a range run's partitions fold into one row per asset."""

from strangler.cli_migrate import summary_rows
from strangler.launch import DayRun


def test_single_partition_run_keeps_its_figures() -> None:
    run = DayRun(
        "2024-01-01",
        "abcdef123456",
        True,
        {"event_store/events": {"migrated": 10, "failed": 1, "events_per_s": 250.5, "other": 3}},
    )
    assert summary_rows(run) == [
        ("2024-01-01", "event_store/events", "migrated=10, failed=1, events_per_s=250.5")
    ]


def test_range_run_sums_each_asset_over_its_partitions() -> None:
    keys = [f"2021-01-0{d}" for d in range(1, 4)]
    metadata = {
        f"{asset} {key}": {"rows": rows, "events_per_s": 99.0}
        for key in keys
        for asset, rows in (("clickhouse/orders_current", 2), ("clickhouse/events", 5))
    }
    run = DayRun("2021-01-01..2021-01-03", "abcdef123456", True, metadata, partitions=3)
    assert sorted(summary_rows(run)) == [
        ("2021-01-01..2021-01-03 (3 partitions)", "clickhouse/events", "rows=15"),
        ("2021-01-01..2021-01-03 (3 partitions)", "clickhouse/orders_current", "rows=6"),
    ]
