"""The estate spec: one declarative file describing one monolith (see docs/spec.md)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from strangler.spec.load import SpecError, SpecProblem, load_spec, parse_spec
from strangler.spec.models import Aggregate, EstateSpec

__all__ = [
    "Aggregate",
    "EstateSpec",
    "SpecError",
    "SpecProblem",
    "current_spec",
    "load_spec",
    "parse_spec",
]


@lru_cache(maxsize=8)
def _cached(path: str, mtime_ns: int) -> EstateSpec:
    return load_spec(path)


def current_spec(path: Path | None = None) -> EstateSpec:
    """The spec named by STRANGLER_SPEC (read once per file version)."""
    if path is None:
        from strangler.settings import get_settings

        path = get_settings().spec
    file = Path(path)
    try:
        mtime = file.stat().st_mtime_ns
    except OSError:
        mtime = 0
    return _cached(str(file), mtime)
