"""Every `strangler ... --help` prints its help and nothing else: no Dagster warning lines.

The commands are read from the Click tree, so a sub-command added later is covered too. Each
runs in its own process with Python's default warning filters (pytest's do not apply there),
which is how a user meets them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import typer.main

from strangler.cli import app

STRANGLER = str(Path(sys.executable).parent / "strangler")


def _command_paths() -> list[list[str]]:
    paths: list[list[str]] = [[]]
    root = typer.main.get_command(app)
    stack: list[tuple[list[str], object]] = [([], root)]
    while stack:
        prefix, command = stack.pop()
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            paths.append([*prefix, name])
            stack.append(([*prefix, name], sub))
    return paths


def _help(path: list[str]) -> tuple[list[str], subprocess.CompletedProcess[str]]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    result = subprocess.run(
        [STRANGLER, *path, "--help"], env=env, capture_output=True, text=True, timeout=120
    )
    return path, result


def test_every_help_prints_no_warning() -> None:
    paths = _command_paths()
    expected = {"stack", "db", "migrate", "check", "rollback", "seed", "ui", "demo"}
    assert expected <= {p[0] for p in paths if p}
    assert {"clickhouse", "weaviate", "all"} <= {
        p[1] for p in paths if len(p) == 2 and p[0] == "migrate"
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(_help, paths))
    for path, result in results:
        shown = " ".join(["strangler", *path])
        assert result.returncode == 0, f"{shown} --help: {result.stderr}"
        assert "Usage:" in result.stdout, shown
        assert result.stderr == "", f"{shown} --help wrote to stderr:\n{result.stderr}"
        assert "Warning" not in result.stdout, f"{shown} --help:\n{result.stdout}"
