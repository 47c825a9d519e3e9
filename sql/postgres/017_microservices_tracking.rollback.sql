-- Undo 017_microservices_tracking: drops the microservices schema's tables, then the schema.

DROP TABLE IF EXISTS microservices.sync_status;
DROP TABLE IF EXISTS microservices.service_health;
DROP TABLE IF EXISTS microservices.processing_log;
DROP TABLE IF EXISTS microservices.service_processing;
DROP SCHEMA IF EXISTS microservices;
