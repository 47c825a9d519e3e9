-- Undo 016_event_sourcing_infrastructure: drops the eventstore schema's tables, then the schema.

DROP TABLE IF EXISTS eventstore.sagas;
DROP TABLE IF EXISTS eventstore.event_types;
DROP TABLE IF EXISTS eventstore.snapshots;
DROP TABLE IF EXISTS eventstore.outbox;
DROP TABLE IF EXISTS eventstore.events;
DROP SCHEMA IF EXISTS eventstore;
