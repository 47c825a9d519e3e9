"""Entry point for `dagster dev` / `dagster asset materialize` (see [tool.dagster])."""

from strangler.definitions import defs

__all__ = ["defs"]
