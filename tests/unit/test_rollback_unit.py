"""Rollback scope parsing and the `strangler rollback` command line (no services needed)."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest
import typer

from strangler.rollback import cli
from strangler.rollback.plan import neighbour_days
from strangler.rollback.scope import scope_of
from strangler.rollback.services import SERVICES, resolve_services


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


def test_command_line_maps_to_the_job_config() -> None:
    """What `strangler rollback all 3 -t ... -d` and `clickhouse --from --to` ask the job for
    (the command itself runs end to end in tests/integration/test_rollback.py)."""
    after = datetime(2024, 1, 15, 10, tzinfo=UTC)
    config = cli.job_config(scope_of(["all"], after=after, code_version="3"), "rid-1", True, "cli")
    assert config["services"] == list(SERVICES)
    assert config["code_version"] == "3" and config["dry_run"] is True
    assert config["after"].startswith("2024-01-15T10:00:00")
    assert config["request_id"] == "rid-1"
    ranged = cli.job_config(
        scope_of(["clickhouse"], from_day="2026-01-01", to_day="2026-01-02"), "r", False, "x"
    )
    assert ranged["services"] == ["analytics-service"]
    assert (ranged["from_day"], ranged["to_day"]) == ("2026-01-01", "2026-01-02")
    with pytest.raises(typer.BadParameter, match="neither a rollback request id"):
        cli._valid_ref("not-a-uuid")


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
    from strangler.checks.partition_live import partition_live
    from strangler.definitions import defs
    from strangler.rollback.asset_keys import ALL_SERVICES, asset_keys_for

    keys = asset_keys_for(ALL_SERVICES)
    assert {s.asset_key for s in partition_live.check_specs} == set(keys)
    graph = defs.resolve_asset_graph()
    for key in keys:
        assert graph.has(key), key
        assert dg.AssetCheckKey(key, "live") in graph.asset_check_keys
