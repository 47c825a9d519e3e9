"""The monolith's tables: observable sources reporting each partition's current version.

A partition's data version is its row count, max(updated_at) and a row checksum, so a late
edit, a hard delete or an edit of a table without `updated_at` changes it.
"""

import warnings
from typing import Any

import dagster as dg

from strangler.migration import source
from strangler.partitions import build_partitions
from strangler.resources.postgres import PostgresResource
from strangler.spec import EstateSpec, current_spec
from strangler.spec.models import Aggregate

OWNERS = ["team:data-platform"]


def monolith_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["monolith", table])


def _observable(spec: EstateSpec, aggregate: Aggregate) -> dg.SourceAsset:
    qualified = aggregate.source.qualified
    partitions = None if aggregate.is_reference else build_partitions(spec)

    @dg.observable_source_asset(
        key=monolith_key(aggregate.source.table),
        partitions_def=partitions,
        group_name="monolith",
        description=(
            f"`{qualified}` in the monolith (read only), the source of `{aggregate.name}`."
            " Each partition's data version is its row count, max(updated_at) and a row"
            " checksum, so late edits and deletes change it."
        ),
        tags={"dagster/kind/postgres": ""},
    )
    def observe(monolith: PostgresResource) -> dg.DataVersionsByPartition | dg.DataVersion:
        with monolith.connection() as conn:
            marks = source.day_marks(conn, spec, aggregate)
            conn.rollback()
        if partitions is None:  # reference data: one version for the whole table
            mark = marks.get(source.REFERENCE, source.DayMark(0, None, 0))
            return dg.DataVersion(mark.version())
        valid = set(partitions.get_partition_keys())
        return dg.DataVersionsByPartition(
            {day: dg.DataVersion(mark.version()) for day, mark in marks.items() if day in valid}
        )

    return observe


def build_monolith_sources(spec: EstateSpec) -> list[dg.SourceAsset]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return [_observable(spec, aggregate) for aggregate in spec.aggregates]


def __getattr__(name: str) -> Any:
    """`monolith_sources` of the configured spec, built on first use (not at import)."""
    if name == "monolith_sources":
        return build_monolith_sources(current_spec())
    raise AttributeError(name)
