"""Example analytics queries for any estate (for the demo and for a quick look at a database).

Generic: they read the shared events table and the current-state tables the spec defines; a
spec's own analytics (its folder of SQL) are queried like any other table.
"""

from __future__ import annotations

from typing import Any

from strangler.analytics.ddl import DdlOptions
from strangler.analytics.state import state_table
from strangler.analytics.swap import SwapClient
from strangler.spec import EstateSpec, current_spec


def example_queries(options: DdlOptions, spec: EstateSpec | None = None) -> dict[str, str]:
    """Title -> SQL over the analytics tables of `options.database` (names validated)."""
    spec = spec or current_spec()
    t = options.table
    current = " UNION ALL ".join(
        f"SELECT '{a.name}' AS aggregate, count() AS rows FROM {t(state_table(a))} FINAL"
        for a in spec.aggregates
    )
    return {
        "events per aggregate and type": (
            "SELECT aggregate_type, event_type, count() AS events,"
            " uniqExact(partition_key) AS partitions"
            f" FROM {t('events')} GROUP BY aggregate_type, event_type"
            " ORDER BY aggregate_type, event_type"
        ),
        "current rows per aggregate (latest version, deletes hidden)": (
            f"SELECT aggregate, rows FROM ({current}) ORDER BY aggregate"
        ),
        "events per partition (newest first)": (
            "SELECT partition_key, count() AS events, max(occurred_at) AS newest"
            f" FROM {t('events')} GROUP BY partition_key ORDER BY partition_key DESC LIMIT 10"
        ),
    }


def run_examples(
    client: SwapClient, options: DdlOptions, spec: EstateSpec | None = None
) -> dict[str, list[tuple[Any, ...]]]:
    return {
        title: [tuple(r) for r in client.query(sql).result_rows]
        for title, sql in example_queries(options, spec).items()
    }
