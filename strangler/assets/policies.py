"""Policies every asset shares, from settings."""

from datetime import timedelta

import dagster as dg

from strangler.settings import get_settings


def freshness_policy() -> dg.FreshnessPolicy:
    """Asset-level: "updated within the window". A backfill of an old day also counts as an
    update, so partition-aware freshness checks complement it (strangler/checks)."""
    settings = get_settings()
    return dg.FreshnessPolicy.time_window(
        fail_window=timedelta(hours=settings.freshness_fail_hours),
        warn_window=timedelta(hours=settings.freshness_warn_hours),
    )
