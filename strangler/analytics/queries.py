"""Three example analytics queries (for the README's demo and for a quick look at a database)."""

from __future__ import annotations

from typing import Any

from strangler.analytics.ddl import DdlOptions
from strangler.analytics.swap import SwapClient


def example_queries(options: DdlOptions) -> dict[str, str]:
    """Title -> SQL over the analytics tables of `options.database` (names validated)."""
    t = options.table
    return {
        "events per day and type (from the MV target)": (
            f"SELECT partition_day, event_type, sum(events) AS events FROM {t('event_counts_daily')}"
            " GROUP BY partition_day, event_type ORDER BY partition_day, event_type"
        ),
        "processing latency p50/p90/p99 per service, all days merged": (
            "SELECT service, sum(jobs) AS jobs, sum(failed) AS failed,"
            " arrayMap(x -> round(x), quantilesTDigestMerge(0.5, 0.9, 0.99)(latency_ms)) AS p50_p90_p99_ms"
            f" FROM {t('processing_latency_daily')} GROUP BY service ORDER BY service"
        ),
        "top customers by documents uploaded": (
            "SELECT customer_id, count() AS documents, formatReadableSize(sum(size_bytes)) AS volume"
            f" FROM {t('events')} WHERE event_type = 'DocumentUploaded'"
            " GROUP BY customer_id ORDER BY documents DESC, customer_id LIMIT 5"
        ),
    }


def run_examples(client: SwapClient, options: DdlOptions) -> dict[str, list[tuple[Any, ...]]]:
    return {
        title: [tuple(r) for r in client.query(sql).result_rows]
        for title, sql in example_queries(options).items()
    }
