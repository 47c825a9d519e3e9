"""Read a spec file: YAML -> models, with every error naming file, line and key path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from strangler.spec.models import EstateSpec


@dataclass(frozen=True)
class SpecProblem:
    path: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class SpecError(Exception):
    """The spec cannot be used; `problems` lists each one with its line."""

    def __init__(self, problems: list[SpecProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def _lines(node: yaml.Node, prefix: tuple[str | int, ...] = ()) -> dict[tuple[str | int, ...], int]:
    """Key path -> 1-based line, from the YAML node tree."""
    out = {prefix: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*prefix, str(key.value))
            out[path] = key.start_mark.line + 1
            out.update({k: v for k, v in _lines(value, path).items() if k != path})
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            out.update(_lines(item, (*prefix, index)))
    return out


def _line_of(lines: dict[tuple[str | int, ...], int], loc: tuple[str | int, ...]) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _key(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


Lines = dict[tuple[str | int, ...], int]
"""Key path (`("aggregates", 0, "source", "table")`) -> 1-based line of that key."""


def key_path(loc: tuple[str | int, ...]) -> str:
    """A key path as the user reads it: `aggregates[1].source.table`."""
    return _key(loc)


def line_of(lines: Lines, loc: tuple[str | int, ...]) -> int | None:
    """The line of a key path, or of its nearest ancestor that is in the file."""
    return _line_of(lines, loc)


def parse_spec(text: str, path: str = "<spec>") -> EstateSpec:
    return parse_spec_lines(text, path)[0]


def parse_spec_lines(text: str, path: str = "<spec>") -> tuple[EstateSpec, Lines]:
    """The spec and its line map, so later checks (the catalog's) can name lines too."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data: Any = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark, context = exc.problem_mark, exc.context_mark
        line = mark.line + 1 if mark is not None else None
        message = f"not valid YAML: {exc.problem}"
        if exc.context and context is not None and context.line + 1 != line:
            message += f" ({exc.context} on line {context.line + 1})"
        raise SpecError([SpecProblem(path, line, "", message)]) from exc
    except yaml.YAMLError as exc:  # e.g. ReaderError: a control character in the file
        line = text.count("\n", 0, getattr(exc, "position", 0)) + 1
        reason = str(exc).splitlines()[0]
        raise SpecError([SpecProblem(path, line, "", f"not valid YAML: {reason}")]) from exc
    if not isinstance(data, dict) or node is None:
        raise SpecError(
            [SpecProblem(path, 1, "", "expected a mapping with `estate` and `aggregates`")]
        )
    lines = _lines(node)
    try:
        return EstateSpec.model_validate(data), lines
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = _user_path(data, error["loc"])
            problems.append(SpecProblem(path, _line_of(lines, loc), _key(loc), error["msg"]))
        raise SpecError(problems) from exc


_MISSING = object()


def _user_path(data: Any, loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """The parts of a pydantic error location the user wrote, found by walking the data.

    Pydantic also names the union member or validator it tried (`OwnDay`, `str`,
    `function-after[...]`); no such key exists in the file, so it is dropped. The last part
    is kept when it names a key of a mapping: a missing or unknown key.
    """
    node, kept = data, []
    for index, part in enumerate(loc):
        child = _MISSING
        if isinstance(node, dict):
            child = node.get(part, _MISSING)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            child = node[part]
        if child is not _MISSING:
            node = child
        elif not (index == len(loc) - 1 and isinstance(node, dict)):
            continue
        kept.append(part)
    return tuple(kept)


def load_spec(path: Path | str) -> EstateSpec:
    return load_spec_lines(path)[0]


def load_spec_lines(path: Path | str) -> tuple[EstateSpec, Lines]:
    """`load_spec` with the line map of the file (see `parse_spec_lines`)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError([SpecProblem(str(file), None, "", f"cannot read: {exc.strerror}")]) from exc
    except UnicodeDecodeError as exc:
        raise SpecError(
            [SpecProblem(str(file), None, "", f"not UTF-8 text: {exc.reason}")]
        ) from exc
    spec, lines = parse_spec_lines(text, str(file))
    return spec.located(file), lines
