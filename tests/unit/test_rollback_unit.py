"""Rollback scope parsing and the `strangler rollback` command line (no services needed)."""

from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import dagster as dg
import pytest
from typer.testing import CliRunner

from strangler.rollback import cli
from strangler.rollback.plan import neighbour_days, scope_of
from strangler.rollback.targets import SERVICES, resolve_services


def test_services_aliases_and_all_in_downstream_order() -> None:
    assert resolve_services(["all"]) == SERVICES
    assert resolve_services(["kafka", "clickhouse"]) == ("analytics-service", "outbox-relay")
    assert resolve_services(["weaviate,event-store"]) == ("search-service", "event-store")
    with pytest.raises(ValueError, match="unknown service"):
        resolve_services(["redis"])


def test_scope_needs_a_range_time_or_version() -> None:
    with pytest.raises(ValueError, match="partition range"):
        scope_of(["all"])
    with pytest.raises(ValueError, match="both --from and --to"):
        scope_of(["all"], from_day="2026-01-01")
    with pytest.raises(ValueError, match="before"):
        scope_of(["all"], from_day="2026-01-02", to_day="2026-01-01")
    assert scope_of(["all"], code_version="3").code_version == "3"


def test_neighbours_are_outside_the_range() -> None:
    assert neighbour_days(["2026-01-02", "2026-01-03"]) == ["2026-01-01", "2026-01-04"]


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    calls: list[tuple[str, dict[str, Any]]] = []

    @contextmanager
    def fake_connect(*_a: Any, **_k: Any) -> Any:
        yield SimpleNamespace(commit=lambda: None)

    def fake_run(name: str, _op: str, config: dict[str, Any]) -> Any:
        calls.append((name, config))
        return SimpleNamespace(success=True, run_id="r1", output_for_node=lambda _n: {})

    monkeypatch.setattr(cli.psycopg, "connect", fake_connect)
    monkeypatch.setattr(cli, "create_request", lambda *a, **k: "rid-1")
    monkeypatch.setattr(cli, "_run", fake_run)
    return calls


def test_cli_mirrors_the_old_script(captured: list[tuple[str, dict[str, Any]]]) -> None:
    runner = CliRunner()
    result = runner.invoke(cli.rollback_app, ["all", "3", "-t", "2024-01-15 10:00:00", "-d"])
    assert result.exit_code == 0, result.output
    name, config = captured[-1]
    assert name == "rollback"
    assert config["services"] == list(SERVICES)
    assert config["code_version"] == "3" and config["dry_run"] is True
    assert config["after"].startswith("2024-01-15T10:00:00")
    assert config["request_id"] == "rid-1"
    result = runner.invoke(
        cli.rollback_app, ["clickhouse", "--from", "2026-01-01", "--to", "2026-01-02"]
    )
    assert result.exit_code == 0, result.output
    assert captured[-1][1]["services"] == ["analytics-service"]
    assert captured[-1][1]["from_day"] == "2026-01-01"
    result = runner.invoke(cli.rollback_app, ["undo", "42"])
    assert result.exit_code == 0, result.output
    assert captured[-1] == ("rollback_undo", {"ref": "42"})
    bad = runner.invoke(cli.rollback_app, ["redis", "--from", "2026-01-01", "--to", "2026-01-01"])
    assert bad.exit_code != 0


def test_liveness_fails_after_a_rollback_until_rematerialized() -> None:
    from strangler.rollback.liveness import RollbackMark, liveness

    assert liveness(None, None).passed
    assert liveness(100.0, None).passed
    rolled = RollbackMark(timestamp=200.0, rolled_back=True, rollback_id="r1")
    state = liveness(100.0, rolled)
    assert not state.passed and state.rollback_id == "r1"
    assert "re-materialized" in state.description
    assert not liveness(None, rolled).passed
    assert liveness(300.0, rolled).passed
    restored = RollbackMark(timestamp=250.0, rolled_back=False, rollback_id="r1")
    assert liveness(100.0, restored).passed


def test_every_rolled_back_asset_has_a_live_check() -> None:
    from strangler.checks.partition_live import LIVE_SPECS
    from strangler.definitions import defs
    from strangler.rollback.asset_keys import ALL_SERVICES, asset_keys_for

    keys = asset_keys_for(ALL_SERVICES)
    assert {s.asset_key for s in LIVE_SPECS} == set(keys)
    graph = defs.resolve_asset_graph()
    for key in keys:
        assert graph.has(key), key
        assert dg.AssetCheckKey(key, "live") in graph.asset_check_keys
