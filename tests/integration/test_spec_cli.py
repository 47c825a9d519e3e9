"""`strangler spec ...` against real databases: the shop (plus a `legacy` schema with what the
spec cannot carry) read by a role that can only SELECT, and the sample's migrated schema.

The commands run in process through `cli_errors.run`, the console script's own entry (same
output, same exit codes); one case runs the installed script to prove the wiring.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from strangler import cli_errors
from strangler.db.scratch import scratch_database
from strangler.settings import SAMPLE_SPEC
from strangler.spec import load_spec
from strangler.spec.catalog import load_catalog
from strangler.spec.check import check_spec
from tests.integration.shop_helpers import SHOP_START, shop_monolith
from tests.schemas.shop import SPEC as SHOP_SPEC

pytestmark = pytest.mark.integration

STRANGLER = str(Path(sys.executable).parent / "strangler")

LEGACY = """
CREATE SCHEMA legacy;
CREATE TABLE legacy.notes (
    id          bigint PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES shop.accounts (id),
    body        text,
    search      tsvector,
    created_at  timestamptz NOT NULL
);
CREATE TABLE legacy.audit_log (at timestamptz NOT NULL, what text);
INSERT INTO legacy.notes SELECT 1, id, 'hello', to_tsvector('hello'), signed_up_at
  FROM shop.accounts ORDER BY id LIMIT 1;
GRANT USAGE ON SCHEMA legacy TO {reader};
GRANT SELECT ON ALL TABLES IN SCHEMA legacy TO {reader};
"""

NOTES = """
  - name: Note
    source: {schema: legacy, table: notes, primary_key: [id]}
    partitioning: {time_column: created_at}
    topic: legacy.notes
"""

AUDIT = """
  - name: AuditEntry
    source: {schema: legacy, table: audit_log, primary_key: [at]}
    partitioning: {time_column: at}
    topic: legacy.audit
"""


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


@dataclass(frozen=True)
class Monolith:
    owner: str
    reader: str
    """A role that may only SELECT (and whose transactions are read-only)."""


def _reader_name(url: str) -> str:
    return url.split("://", 1)[1].split("@", 1)[0]


@pytest.fixture(scope="module")
def monolith(postgres_url: str) -> Iterator[Monolith]:
    with shop_monolith(postgres_url) as (owner, reader, _):
        with psycopg.connect(owner) as conn:
            conn.execute(sql.SQL(LEGACY).format(reader=sql.Identifier(_reader_name(reader))))
        yield Monolith(owner, reader)


Run = Callable[..., Result]


@pytest.fixture
def strangler(capsys: pytest.CaptureFixture[str]) -> Run:
    """`strangler ARGS...` in process, as the console script runs it: (exit code, out, err)."""
    from strangler.cli import app

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = cli_errors.run(lambda: app, list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def _spec_with(tmp_path: Path, extra: str = "", replace: tuple[str, str] | None = None) -> Path:
    text = SHOP_SPEC.read_text(encoding="utf-8")
    if replace is not None:
        assert replace[0] in text
        text = text.replace(replace[0], replace[1])
    path = tmp_path / "strangler.yaml"
    path.write_text(text + extra, encoding="utf-8")
    return path


def _line_of(path: Path, needle: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


def test_init_drafts_a_spec_that_loads_and_passes_check(
    monolith: Monolith, strangler: Run, tmp_path: Path
) -> None:
    run = strangler
    out = tmp_path / "strangler.yaml"
    drafted = run("spec", "init", "--url", monolith.reader, "-o", str(out))
    assert drafted.code == 0, drafted.err
    assert f"wrote {out}: 5 aggregates" in drafted.err
    spec = load_spec(out)
    names = [a.name for a in spec.aggregates]
    assert sorted(names) == ["Account", "Country", "Note", "Order", "OrderLine"]
    assert names.index("Order") < names.index("OrderLine")
    assert names.index("Account") < names.index("Note")  # a foreign key across schemas
    assert spec.estate.first_partition == SHOP_START
    line = spec.aggregate("OrderLine")
    assert line.source.primary_key == ["account_id", "order_no", "line_no"]
    assert line.partitioning.model_dump() == {"parent": "Order"}
    assert line.parents[0].columns == ["account_id", "order_no"]
    account = spec.aggregate("Account")
    assert (account.source.updated_at, account.source.soft_delete) == ("modified_at", "deleted_at")
    assert account.partitioning.model_dump() == {"time_column": "signed_up_at"}
    assert spec.aggregate("Country").is_reference
    assert spec.aggregate("Note").source.exclude == ["search"]
    text = out.read_text(encoding="utf-8")
    assert "# skipped legacy.audit_log: no primary key" in text
    assert "# fold_into: Order" in text

    checked = run("spec", "check", str(out), "--against", monolith.reader)
    assert (checked.code, checked.err) == (0, "")
    assert checked.out.startswith("ok: 5 aggregates, 15 event types")
    assert check_spec(spec, load_catalog(monolith.reader, ["shop", "legacy"])) == []

    refused = run("spec", "init", "--url", monolith.reader, "-o", str(out))
    assert refused.code == 2 and "exists; --force overwrites it" in refused.err
    printed = run("spec", "init", "--url", monolith.reader, "--schema", "shop")
    assert printed.code == 0 and printed.out.startswith("# yaml-language-server: $schema=")
    assert "legacy" not in printed.out.split("version: 1")[1]


def test_the_shop_spec_passes_check_against_the_shop(monolith: Monolith, strangler: Run) -> None:
    result = strangler("spec", "check", str(SHOP_SPEC), "--against", monolith.reader)
    assert (result.code, result.err) == (0, "")
    assert result.out == "ok: 4 aggregates, 15 event types, checked against database " + (
        monolith.owner.rsplit("/", 1)[1] + "\n"
    )


def test_an_unknown_column_suggests_the_right_one(
    monolith: Monolith, strangler: Run, tmp_path: Path
) -> None:
    spec = _spec_with(tmp_path, replace=("updated_at: modified_at", "updated_at: modifed_at"))
    result = strangler("spec", "check", str(spec), "--against", monolith.reader)
    assert result.code == 1 and result.out == ""
    line = _line_of(spec, "updated_at: modifed_at")
    assert result.err == (
        f"{spec}:{line}: aggregates[1].source.updated_at: table shop.accounts has no column"
        ' modifed_at; did you mean "modified_at"?\n'
    )


def test_an_unmappable_type_names_table_column_type_and_fix(
    monolith: Monolith, strangler: Run, tmp_path: Path
) -> None:
    spec = _spec_with(tmp_path, NOTES)
    result = strangler("spec", "check", str(spec), "--against", monolith.reader)
    assert result.code == 1
    (line,) = result.err.splitlines()
    assert line.startswith(f"{spec}:{_line_of(spec, 'table: notes')}: aggregates[4].source.table:")
    assert "legacy.notes.search has type tsvector" in line
    assert "exclude it (source: {exclude: [search]})" in line and "{as: string}" in line

    fixed = _spec_with(tmp_path, NOTES + "    columns:\n      search: {as: string}\n")
    assert strangler("spec", "check", str(fixed), "--against", monolith.reader).code == 0


def test_a_search_block_naming_fields_the_events_do_not_carry(
    monolith: Monolith, strangler: Run, tmp_path: Path
) -> None:
    """The shop's Order search: a misspelt template field and expect key, each on its line."""
    spec = _spec_with(tmp_path, replace=('text: "{note}"', 'text: "{notes}"'))
    text = spec.read_text(encoding="utf-8").replace(
        "expect: {status: cancelled}", "expect: {state: cancelled}"
    )
    spec.write_text(text, encoding="utf-8")
    result = strangler("spec", "check", str(spec), "--against", monolith.reader)
    assert result.code == 1 and result.out == ""
    template, expect = result.err.splitlines()
    assert template.startswith(
        f"{spec}:{_line_of(spec, '{notes}')}: aggregates[2].search.text: the text"
        " template's field 'notes' is not a field of Order's events; did you mean \"note\"?"
    )
    assert expect.startswith(
        f"{spec}:{_line_of(spec, 'expect: {state')}: aggregates[2].search.queries[0].expect.state:"
        " expected field 'state' is not a field of Order's events"
    )


def test_a_table_without_a_key(monolith: Monolith, strangler: Run, tmp_path: Path) -> None:
    spec = _spec_with(tmp_path, AUDIT)
    result = strangler("spec", "check", str(spec), "--against", monolith.reader)
    assert result.code == 1
    assert result.err == (
        f"{spec}:{_line_of(spec, 'table: audit_log')}: aggregates[4].source.primary_key: table"
        " legacy.audit_log has no primary key or unique index; declare primary_key: [...] of a"
        " unique column set (create a unique index on it in the monolith first)\n"
    )


def test_bad_yaml_and_unknown_keys_fail_without_a_database(strangler: Run, tmp_path: Path) -> None:
    run = strangler
    spec = _spec_with(tmp_path, replace=("topic: shop.accounts", "topic: [shop.accounts"))
    result = run("spec", "check", str(spec))
    assert result.code == 1
    (line,) = result.err.splitlines()
    assert line.startswith(f"{spec}:") and "not valid YAML" in line
    assert f"while parsing a flow sequence on line {_line_of(spec, '[shop.accounts')}" in line

    spec = _spec_with(tmp_path, replace=("    topic: shop.accounts", "    topik: shop.accounts"))
    result = run("spec", "check", str(spec))
    assert result.code == 1
    assert f"{spec}:{_line_of(spec, 'topik')}: aggregates[1].topik: Extra inputs" in result.err

    missing = run("spec", "check", str(tmp_path / "nope.yaml"))
    assert missing.code == 2 and "no such file" in missing.err
    bad_format = run("spec", "show", str(SHOP_SPEC), "--format", "xml")
    assert bad_format.code == 2


def test_an_unreachable_database_is_exit_3_without_the_password(
    strangler: Run, tmp_path: Path
) -> None:
    url = "postgresql://someone:hunter2@127.0.0.1:1/nowhere"
    result = strangler("spec", "check", str(SHOP_SPEC), "--against", url)
    assert result.code == 3
    assert "PostgreSQL is unreachable" in result.err and "hunter2" not in result.err
    assert len(result.err.splitlines()) == 1


def test_show_and_schema(strangler: Run, tmp_path: Path) -> None:
    import json

    run = strangler
    shown = run("spec", "show", str(SHOP_SPEC), "--format", "json")
    assert shown.code == 0
    document = json.loads(shown.out)
    order_line = document["aggregates"][3]
    assert order_line == {
        "name": "OrderLine",
        "table": "shop.order_lines",
        "key": ["account_id", "order_no", "line_no"],
        "partitioning": "day of parent Order",
        "topic": "shop.orders",
        "fold_into": "Order",
        "event_types": ["OrderLineImported", "OrderLineChanged", "OrderLineDeleted"],
        "rules": [
            "quantity: required, min 1",
            "unit_price: min 0",
            "orphan_fk: (account_id, order_no) -> Order",
        ],
    }
    table = run("spec", "show", str(SHOP_SPEC))
    assert table.code == 0 and "OrderLine" in table.out and "day of signed_up_at" in table.out

    from strangler.spec.json_schema import SCHEMA_FILE

    printed = run("spec", "schema")
    assert printed.out == SCHEMA_FILE.read_text(encoding="utf-8")
    written = run("spec", "schema", "-o", str(tmp_path / "s.json"))
    assert written.code == 0 and (tmp_path / "s.json").read_text() == printed.out


def test_the_sample_spec_passes_against_the_migrated_sample_schema(
    postgres_url: str, strangler: Run, tmp_path: Path
) -> None:
    run = strangler
    with scratch_database(postgres_url, "spec") as url:
        result = run("spec", "check", str(SAMPLE_SPEC), "--against", url)
        assert (result.code, result.err) == (0, "")
        assert result.out.startswith("ok: 4 aggregates, 13 event types")
        drafted = run(
            "spec", "init", "--url", url, "--schema", "monolith", "-o", str(tmp_path / "s.yaml")
        )
        assert drafted.code == 0, drafted.err
        names = [a.name for a in load_spec(tmp_path / "s.yaml").aggregates]
        assert names == ["Customer", "Document", "OcrPage", "ProcessingJob"]


def test_the_installed_script(tmp_path: Path) -> None:
    """One run of the console script itself: one line on stderr, exit 1."""
    spec = _spec_with(tmp_path, replace=("name: Order\n", "name: order\n"))
    done = subprocess.run(
        [STRANGLER, "spec", "check", str(spec)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith(f"{spec}:{_line_of(spec, 'name: order')}: aggregates[2].name:")
    assert len(done.stderr.splitlines()) == 1


def test_sql_expressions_are_compiled_against_the_table(
    monolith: Monolith, strangler: Run, tmp_path: Path
) -> None:
    """A misspelt column in `when` (with Postgres's hint), an `at` that is no time; a `%` in
    the SQL stays the user's."""
    spec = _spec_with(
        tmp_path, replace=("when: shipped_at IS NOT NULL", "when: shiped_at IS NOT NULL")
    )
    text = spec.read_text(encoding="utf-8").replace("at: placed_at\n", "at: status\n")
    text = text.replace("when: tier = 'business'", "when: tier::text LIKE '%busi%'")
    spec.write_text(text, encoding="utf-8")
    result = strangler("spec", "check", str(spec), "--against", monolith.reader)
    assert result.code == 1
    assert result.err.splitlines() == [
        f"{spec}:{_line_of(spec, 'shiped_at')}: aggregates[2].events.named[0].when: SQL does not"
        ' run: column "shiped_at" does not exist (Perhaps you meant to reference the column'
        ' "t.shipped_at".)',
        f"{spec}:{_line_of(spec, 'at: status')}: aggregates[2].events.named[1].at: `at` must"
        " give a timestamptz, timestamp or date",
    ]


def test_check_reads_the_spec_named_by_the_setting(
    strangler: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    from strangler.settings import get_settings

    monkeypatch.setenv("STRANGLER_SPEC", str(SHOP_SPEC))
    get_settings.cache_clear()
    try:
        result = strangler("spec", "check")
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert (result.code, result.out) == (0, "ok: 4 aggregates, 15 event types\n")
