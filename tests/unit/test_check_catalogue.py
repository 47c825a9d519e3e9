"""The check catalogue is the one source: the Dagster checks, the runner and the docs equal it.

Compared for the sample spec and the shop spec, so a check declared for one estate's names
only (or a store whose units do not follow the spec) shows up here.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from strangler.checks import catalogue
from strangler.checks.catalogue import (
    CATALOGUE,
    DOC_BEGIN,
    DOC_END,
    DeclaredCheck,
    all_checks,
    catalogue_markdown,
    declared_checks,
    units_of,
)
from strangler.checks.cli import SYSTEM_SERVICES, SystemChoice
from strangler.checks.consistency import build_consistency_checks, consistency_check_keys
from strangler.checks.freshness import build_freshness_checks, daily_assets
from strangler.checks.systems import SYSTEMS
from strangler.migration.source import REFERENCE
from strangler.rollback.asset_keys import ALL_SERVICES, asset_keys_for
from strangler.spec import EstateSpec, load_spec
from tests.schemas.shop import SPEC as SHOP_SPEC

SAMPLE_SPEC = Path(__file__).resolve().parents[2] / "strangler" / "sample" / "strangler.yaml"
DOC = Path(__file__).resolve().parents[2] / "docs" / "checks.md"


@pytest.fixture(params=["sample", "shop"])
def spec(request: pytest.FixtureRequest) -> EstateSpec:
    return load_spec(SAMPLE_SPEC if request.param == "sample" else SHOP_SPEC)


def _catalogue_rows(declared: list[DeclaredCheck]) -> set[tuple[str, str, bool, str]]:
    return {
        (
            dg.AssetKey(list(d.asset)).to_user_string(),
            d.check.name,
            d.check.blocking,
            d.check.description,
        )
        for d in declared
    }


def test_dagster_check_specs_equal_the_catalogue(spec: EstateSpec) -> None:
    specs = [s for c in build_consistency_checks(spec) for s in c.check_specs]
    built = {(s.asset_key.to_user_string(), s.name, s.blocking, s.description) for s in specs}
    assert len(specs) == len(built), "a check is declared twice"
    assert built == _catalogue_rows(declared_checks(spec))
    assert set(consistency_check_keys(spec)) == {s.key for s in specs}


def test_the_runner_runs_exactly_the_catalogue(spec: EstateSpec) -> None:
    """The runner walks the catalogue's units; every check it reports is a catalogue check."""
    runner_units = {
        (system, unit.asset) for system in SYSTEMS for unit in units_of(spec, system, "2026-05-04")
    }
    assert runner_units == {(d.check.system, d.asset) for d in declared_checks(spec)}
    outcome_names = {c.outcome_name for c in all_checks()}
    assert len(outcome_names) == len(all_checks())
    assert {c.outcome_name.split(".")[0] for c in all_checks()} == {
        s.replace("-", "_") for s in SYSTEMS
    }
    assert tuple(g.system for g in CATALOGUE) == SYSTEMS
    assert {c.value for c in SystemChoice} == {*SYSTEMS, "all"}
    assert set(SYSTEM_SERVICES) == set(SYSTEMS)
    for check in all_checks():
        assert callable(check.resolve()), check.function


def test_units_follow_the_spec(spec: EstateSpec) -> None:
    """Topics and collections come from the spec: every daily stream, every searchable
    aggregate; reference data has its own units."""
    daily_topics = {spec.topic_of(a.name) for a in spec.daily}
    assert {u.asset[1] for u in units_of(spec, "kafka", "2026-05-04")} == daily_topics
    assert {u.subject for u in units_of(spec, "weaviate", "2026-05-04")} == {
        a.name for a in spec.searchable if not a.is_reference
    }
    reference_topics = {spec.topic_of(a.name) for a in spec.reference}
    assert {u.asset[1] for u in units_of(spec, "kafka", REFERENCE)} == reference_topics
    reference_tables = {u.asset for u in units_of(spec, "clickhouse", REFERENCE)}
    assert reference_tables == ({("clickhouse", REFERENCE)} if spec.reference else set())


def test_freshness_rollback_and_live_checks_cover_the_catalogue_assets(spec: EstateSpec) -> None:
    assets = {dg.AssetKey(list(d.asset)) for d in declared_checks(spec)}
    assert set(daily_assets(spec)) == assets
    fresh = {k.asset_key for c in build_freshness_checks(spec) for k in c.check_keys}
    assert fresh == assets
    rolled_back = set(asset_keys_for(ALL_SERVICES, spec))
    assert assets - {dg.AssetKey(["clickhouse", "events"])} <= rolled_back


def test_the_sample_has_no_shop_checks_and_back() -> None:
    sample, shop = load_spec(SAMPLE_SPEC), load_spec(SHOP_SPEC)
    shop_topics = {a.asset for a in declared_checks(shop) if a.check.system == "kafka"}
    sample_topics = {a.asset for a in declared_checks(sample) if a.check.system == "kafka"}
    assert shop_topics and sample_topics and not shop_topics & sample_topics


def test_docs_table_is_the_catalogue() -> None:
    """docs/checks.md carries the generated table; regenerate it with
    `python -m strangler.checks.catalogue docs/checks.md`."""
    text = DOC.read_text(encoding="utf-8")
    table = text.split(DOC_BEGIN, 1)[1].split(DOC_END, 1)[0]
    assert table.strip() == catalogue_markdown().strip()
    assert "../shared" not in text and "DESIGN" not in text
    assert catalogue.__doc__
