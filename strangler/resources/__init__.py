"""Thin Dagster resources over the five external systems; the work lives elsewhere."""
