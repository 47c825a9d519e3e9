"""The local service stack: Postgres, Kafka, Weaviate and embedded ClickHouse, no Docker."""
