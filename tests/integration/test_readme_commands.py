"""Every command the README shows in a ```bash block runs exactly as written.

A README promise that does not hold costs a new user their first five minutes, so the
commands are read from README.md itself, in order, and run from the repository root in a
shell. Commands that take minutes, run until stopped, or would stop the shared stack are
listed in SKIPPED with the reason and where they are exercised instead. Everything runs on
throwaway stores: a scratch database, a Dagster home of its own, and topic / ClickHouse
database / Weaviate collection names with a unique prefix, removed afterwards.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main

from strangler.cli import app
from strangler.db.scratch import scratch_database
from strangler.resources.clickhouse import ClickHouseResource
from strangler.resources.kafka import KafkaResource
from strangler.resources.weaviate import WeaviateResource
from strangler.settings import Settings
from strangler.stack.manager import Stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

SKIPPED = {
    "make demo": "minutes: venv, stack and the whole main job",
    "make test": "minutes: the whole suite, this test included",
    ".venv/bin/strangler demo": "minutes: the main job over seven days",
    ".venv/bin/strangler ui": "runs until stopped: tests/e2e/test_ui.py and test_ui_signals.py",
    ".venv/bin/dagster dev": "runs until stopped: the same webserver + daemon as `strangler ui`",
    ".venv/bin/strangler stack down": "would stop the stack every other test and session uses;"
    " tests/serial/test_stack_lifecycle.py stops and restarts it",
    "make lint typecheck imports": "checks of the working tree, which `make test` runs first",
    ".venv/bin/pytest tests/unit": "the unit suite, not a product command",
}


SKIPPED_SECTIONS = {
    "## Migrate your own monolith": "a walk-through on the reader's own databases: `replica`"
    " and `estate` stand for their hosts",
}


def _sections(text: str) -> list[tuple[str, str]]:
    """(heading, body) of each `## ` section."""
    parts = re.split(r"^(## .*)$", text, flags=re.M)
    return [(parts[i].strip(), parts[i + 1]) for i in range(1, len(parts) - 1, 2)]


def readme_commands() -> list[str]:
    """The lines of every ```bash block outside SKIPPED_SECTIONS, without `# comments`."""
    commands: list[str] = []
    text = README.read_text(encoding="utf-8")
    runnable = "".join(b for h, b in _sections(text) if h not in SKIPPED_SECTIONS)
    assert set(SKIPPED_SECTIONS) <= {h for h, _ in _sections(text)}, "stale SKIPPED_SECTIONS"
    for block in re.findall(r"```bash\n(.*?)```", text[: text.index("\n## ")] + runnable, re.S):
        for line in block.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command:
                commands.append(command)
    return commands


@pytest.fixture(scope="module")
def isolated_env(
    stack: Stack,
    settings: Settings,
    kafka: KafkaResource,
    clickhouse: ClickHouseResource,
    weaviate_resource: WeaviateResource,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, str]]:
    unique = uuid.uuid4().hex[:10]
    topic_prefix = f"readme-{unique}."
    database = f"readme_{unique}"
    collections = f"Readme{unique}"
    dagster_home = tmp_path_factory.mktemp("dagster-home")
    with scratch_database(settings.postgres_url, prefix="readme") as url:
        yield {
            **{k: v for k, v in os.environ.items() if k != "STRANGLER_DEBUG"},
            "STRANGLER_POSTGRES_URL": url,
            "DAGSTER_HOME": str(dagster_home),
            "STRANGLER_KAFKA_TOPIC_PREFIX": topic_prefix,
            "STRANGLER_CLICKHOUSE_DATABASE": database,
            "STRANGLER_WEAVIATE_COLLECTION_PREFIX": collections,
            "STRANGLER_ROLLBACK_SNAPSHOT_DIR": str(tmp_path_factory.mktemp("snapshots")),
        }
    admin = kafka.admin()  # kept referenced until the deletes are done
    topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(topic_prefix)]
    if topics:
        for future in admin.delete_topics(topics).values():
            future.result(30)
    with clickhouse.client() as client:
        client.command(f"DROP DATABASE IF EXISTS `{database}`")
    with weaviate_resource.client() as client:
        for name in client.collections.list_all():
            if name.startswith(collections):
                client.collections.delete(name)


def test_readme_shows_the_whole_cli() -> None:
    """The command reference names every command and sub-command the CLI has."""
    text = README.read_text(encoding="utf-8")
    reference = re.search(r"## Command line\n.*?```text\n(.*?)```", text, re.S)
    assert reference, "README: no ```text command reference under ## Command line"
    root = typer.main.get_command(app)
    for name, command in getattr(root, "commands", {}).items():
        assert re.search(rf"^\s+{name}\b", reference.group(1), re.M), name
        for sub in getattr(command, "commands", {}):
            assert re.search(rf"\b{sub}\b", reference.group(1)), f"{name} {sub}"


def test_every_readme_command_runs_as_written(isolated_env: dict[str, str]) -> None:
    commands = readme_commands()
    assert not set(SKIPPED) - set(commands), "SKIPPED names commands the README no longer has"
    ran = []
    for command in commands:
        if command in SKIPPED:
            continue
        result = subprocess.run(
            ["bash", "-c", command],
            cwd=ROOT,
            env=isolated_env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, (
            f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
        if command.startswith(".venv/bin/strangler"):
            assert "Warning" not in result.stderr, f"{command}\n{result.stderr}"
        ran.append(command)
    assert any("migrate weaviate" in c for c in ran) and any("dagster asset" in c for c in ran)
