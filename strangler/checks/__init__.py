"""Cross-system consistency checks (plain functions) and their Dagster layer.

Plain modules (`outcome`, `diff`, `event_store`, `kafka`, `clickhouse`, `weaviate`, `runner`,
`report`, `alerts`) take clients and a partition key and return `CheckOutcome`s, so the CLI,
the sensors and the asset checks run the very same code. `consistency` and `freshness` are
the thin Dagster layer.
"""
