"""The whole code location, snapshotted per spec (sample and shop) and compared with a file.

A change to the definitions' shape (an asset, a dependency, a partitions definition, a check or
its blocking flag, a sensor, a job) fails here until the snapshot is regenerated and reviewed:

    STRANGLER_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/unit/test_definitions_snapshot.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from strangler.definitions import build_definitions
from strangler.settings import SAMPLE_SPEC, Settings
from strangler.spec import load_spec
from tests.definitions_snapshot import snapshot

SNAPSHOTS = Path(__file__).resolve().parents[1] / "snapshots"
SHOP_SPEC = Path(__file__).resolve().parents[1] / "schemas" / "shop" / "strangler.yaml"
SPECS = {"sample": Path(SAMPLE_SPEC), "shop": SHOP_SPEC}
UPDATE = os.environ.get("STRANGLER_UPDATE_SNAPSHOTS") == "1"


def _render(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_definitions_match_their_snapshot(name: str) -> None:
    spec_file = SPECS[name]
    built = snapshot(build_definitions(load_spec(spec_file), Settings(spec=spec_file)))
    file = SNAPSHOTS / f"definitions_{name}.json"
    if UPDATE:
        file.write_text(_render(built))
    assert file.exists(), f"no snapshot {file}: run with STRANGLER_UPDATE_SNAPSHOTS=1"
    assert _render(built) == file.read_text(), (
        f"the definitions of the {name} spec changed; review the diff and regenerate with "
        "STRANGLER_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/unit/test_definitions_snapshot.py"
    )


@pytest.mark.parametrize("name", sorted(SPECS))
def test_definitions_follow_the_spec(name: str) -> None:
    """Sources, topics and collections are exactly the spec's, and no check or dependency names
    an asset the spec does not have: the definitions come from the spec handed to
    `build_definitions`, not from the configured one (the sample's, by default)."""
    spec = load_spec(SPECS[name])
    assets = snapshot(build_definitions(spec, Settings(spec=SPECS[name])))["assets"]
    sources = {key for key in assets if key.startswith("monolith/")}
    topics = {key for key in assets if key.startswith("kafka/")}
    assert sources == {f"monolith/{a.source.table}" for a in spec.aggregates}
    assert topics == {f"kafka/{topic}" for topic in spec.topics.values()}
    collections = {key for key in assets if key.startswith("weaviate/")}
    assert collections == {f"weaviate/{a.name}" for a in spec.searchable}
    dangling = [key for key, asset in assets.items() if asset["execution"] == "UNEXECUTABLE"]
    assert not dangling, f"checks or deps name assets no builder of this spec made: {dangling}"
