"""docs/spec.md documents every key of the estate spec (the models are the truth)."""

from __future__ import annotations

import re
import types
import typing
from itertools import product
from pathlib import Path

from pydantic import BaseModel

from strangler.spec.models import EstateSpec

DOC = Path(__file__).resolve().parents[2] / "docs" / "spec.md"
MAP_KEYS = {"columns": "<column>", "fields": "<field>", "expect": "<property>"}


def _models(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


def _containers(annotation: object) -> set[object]:
    """list / dict around the models of an annotation, through Optional and unions."""
    origin = typing.get_origin(annotation)
    if origin in (list, dict):
        return {origin}
    if origin in (typing.Union, types.UnionType):
        return {c for arg in typing.get_args(annotation) for c in _containers(arg)}
    return set()


def spec_keys(model: type[BaseModel] = EstateSpec, prefix: str = "") -> list[str]:
    """Every key path of the spec, e.g. `aggregates[].search.tenant.parent`."""
    keys: list[str] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        path = f"{prefix}{key}"
        keys.append(path)
        containers = _containers(field.annotation)
        inner = path
        if list in containers:
            inner = f"{path}[]"
        elif dict in containers:
            inner = f"{path}.{MAP_KEYS.get(key, '<name>')}"
        for sub in _models(field.annotation):
            keys.extend(spec_keys(sub, f"{inner}."))
    return keys


def documented_keys(text: str) -> set[str]:
    """The keys of the doc's key table: `a.{b,c}.d` rows expand to `a.b.d` and `a.c.d`."""
    keys: set[str] = set()
    for row in re.findall(r"^\| `([^`]+)` \|", text, flags=re.MULTILINE):
        parts = re.split(r"\{([^}]*)\}", row)
        choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
        keys.update("".join(combo) for combo in product(*choices))
    return keys


def test_every_spec_key_is_documented_with_an_example() -> None:
    text = DOC.read_text()
    table = text[text.index("## Every key") :]
    documented = documented_keys(table)
    missing = [key for key in spec_keys() if key not in documented]
    assert not missing, f"docs/spec.md 'Every key' lacks: {missing}"
    stale = sorted(documented - set(spec_keys()))
    assert not stale, f"docs/spec.md 'Every key' documents keys the spec does not have: {stale}"
    for row in re.findall(r"^\| `[^`]+` \|.*$", table, flags=re.MULTILINE):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 3 and cells[1], f"a key without an example: {row}"
