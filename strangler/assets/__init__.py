"""Thin Dagster layer: what each store is and when it is built; the work lives in `migration`."""
