-- Drops the sample monolith created by 001_monolith.sql (tables, indexes, identity sequences).

DROP TABLE IF EXISTS monolith.processing_jobs;
DROP TABLE IF EXISTS monolith.ocr_pages;
DROP TABLE IF EXISTS monolith.documents;
DROP TABLE IF EXISTS monolith.customers;
DROP SCHEMA IF EXISTS monolith;
