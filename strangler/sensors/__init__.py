"""Sensors that start backfills (late data, failed checks) and rollbacks (requests)."""
