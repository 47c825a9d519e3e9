"""The monolith's tables: observable sources reporting, per day, row count and watermark."""

import warnings

import dagster as dg

from strangler.migration import source
from strangler.partitions import daily_partitions
from strangler.resources.postgres import PostgresResource

OWNERS = ["team:data-platform"]


def monolith_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["monolith", table])


def _observable(table: str) -> dg.SourceAsset:
    @dg.observable_source_asset(
        key=monolith_key(table),
        partitions_def=daily_partitions,
        group_name="monolith",
        description=(
            f"`monolith.{table}` in the legacy database. Each day's data version is its row count "
            "and max(updated_at), so a late edit to an old day changes that day's version."
        ),
        tags={"dagster/kind/postgres": ""},
    )
    def observe(postgres: PostgresResource) -> dg.DataVersionsByPartition:
        valid = set(daily_partitions.get_partition_keys())
        with postgres.connection() as conn:
            marks = source.day_watermarks(conn, table)
        return dg.DataVersionsByPartition(
            {
                day: dg.DataVersion(f"rows={count};max_updated_at={watermark.isoformat()}")
                for day, (count, watermark) in marks.items()
                if day in valid
            }
        )

    return observe


with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)
    monolith_sources = [_observable(table) for table in source.TABLES]
