"""ClickHouse analytics sink: Kafka day -> events table, current state and views."""
