"""Strangler: a Dagster code location that strangles a Postgres monolith, from its estate spec.

`strangler.Estate` (the Dagster component) is loaded on first use, so the pure packages and
the CLI do not import Dagster by importing `strangler`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Estate"]


def __getattr__(name: str) -> Any:
    if name == "Estate":
        from strangler.component import Estate

        return Estate
    raise AttributeError(f"module 'strangler' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "Estate"])
