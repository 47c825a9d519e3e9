"""`strangler.Estate`, the Dagster component: same definitions as `build_definitions`, and a
real dg project using it (`dg list components`, `dg check yaml`, `dg list defs`).

The dg commands run as subprocesses in the project's own virtual environment, where the
package's `dagster_dg_cli.registry_modules` entry point registers the component.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from dagster.components.core.package_entry import discover_entry_point_package_objects
from dagster.components.testing import create_defs_folder_sandbox
from dagster_shared.serdes.objects import EnvRegistryKey

from strangler.component import Estate
from strangler.definitions import build_definitions
from strangler.settings import SAMPLE_SPEC, Settings
from strangler.spec import load_spec
from tests.definitions_snapshot import snapshot
from tests.integration.shop_helpers import shop_monolith

SHOP_SPEC = Path(__file__).resolve().parents[1] / "schemas" / "shop" / "strangler.yaml"
SPECS = {"sample": Path(SAMPLE_SPEC), "shop": SHOP_SPEC}
DG = Path(sys.executable).parent / "dg"

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", sorted(SPECS))
def test_component_builds_the_definitions_of_its_spec(name: str, tmp_path: Path) -> None:
    """The component loaded from a defs.yaml (spec relative to it) builds what the repository's
    `build_definitions(spec, settings)` builds: assets, deps, partitions, checks and their
    blocking flags, sensors, jobs, and the same resources and executor."""
    with create_defs_folder_sandbox() as sandbox:
        folder = sandbox.defs_folder_path / "estate"
        _copy_spec(SPECS[name], folder)
        (folder / "defs.yaml").write_text(
            yaml.safe_dump({"type": "strangler.Estate", "attributes": {"spec": "strangler.yaml"}})
        )
        with (
            pytest.warns(UserWarning, match="set it to .*strangler.yaml so they see the same"),
            sandbox.load_component_and_build_defs(defs_path=folder) as (component, from_yaml),
        ):  # the settings name another spec file: the component says the CLI would not see it
            assert isinstance(component, Estate)
            spec_file = folder / "strangler.yaml"
            direct = build_definitions(load_spec(spec_file), Settings(spec=spec_file))
            assert snapshot(from_yaml) == snapshot(direct)
            assert from_yaml.resources is not None and direct.resources is not None
            assert sorted(from_yaml.resources) == sorted(direct.resources)
            assert {k: type(v) for k, v in from_yaml.resources.items()} == {
                k: type(v) for k, v in direct.resources.items()
            }
            assert from_yaml.executor is not None and direct.executor is not None
            assert from_yaml.executor.name == direct.executor.name


def _copy_spec(spec_file: Path, folder: Path) -> None:
    """The spec as `folder/strangler.yaml`, with the analytics folder it names beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(spec_file, folder / "strangler.yaml")
    spec = load_spec(spec_file)
    if spec.analytics.sql and spec.analytics_dir is not None:
        shutil.copytree(spec.analytics_dir, folder / spec.analytics.sql)


def _project(root: Path) -> Path:
    """A minimal dg project (as `dg scaffold project` lays it out); returns its defs folder."""
    (root / "pyproject.toml").write_text(
        textwrap.dedent("""\
            [project]
            name = "estate-project"
            version = "0.0.1"
            requires-python = ">=3.11"

            [tool.dg]
            directory_type = "project"

            [tool.dg.project]
            root_module = "estate_project"

            [tool.dg.cli]
            suppress_warnings = ["project_and_activated_venv_mismatch"]
            """)
    )
    package = root / "estate_project"
    (package / "defs").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "defs" / "__init__.py").write_text("")
    (package / "definitions.py").write_text(
        textwrap.dedent("""\
            from pathlib import Path

            import dagster as dg


            @dg.definitions
            def defs() -> dg.Definitions:
                return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
            """)
    )
    (root / ".venv").symlink_to(sys.prefix)  # dg runs the project in its .venv: this one
    return package / "defs"


def _declare(defs: Path, spec_file: Path, attributes: dict[str, object]) -> Path:
    """defs/estate/defs.yaml declaring the component, with a copy of the spec beside it."""
    folder = defs / "estate"
    _copy_spec(spec_file, folder)
    (folder / "defs.yaml").write_text(
        yaml.safe_dump({"type": "strangler.Estate", "attributes": attributes})
    )
    return folder


def _dg(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VIRTUAL_ENV": str(root / ".venv"), "NO_COLOR": "1"}
    return subprocess.run(
        [str(DG), *args], cwd=root, env=env, capture_output=True, text=True, timeout=180
    )


def _assert_lists(listed: subprocess.CompletedProcess[str], spec_file: Path) -> None:
    """`dg list defs --json` shows what build_definitions builds from the same spec."""
    assert listed.returncode == 0, listed.stderr
    seen = json.loads(listed.stdout)
    expected = snapshot(build_definitions(load_spec(spec_file), Settings(spec=spec_file)))
    assert {a["asset_key"]: sorted(a["dependency_keys"]) for a in seen["assets"]} == {
        key: asset["deps"] for key, asset in expected["assets"].items()
    }
    assert {c["key"] for c in seen["asset_checks"]} == set(expected["checks"])
    assert {s["name"] for s in seen["sensors"]} == set(expected["sensors"])
    assert {j["name"] for j in seen["jobs"]} == set(expected["jobs"])
    assert {r["name"] for r in seen["resources"]} >= {"postgres", "monolith", "kafka"}


def test_the_component_type_is_registered() -> None:
    """What `dg list components` lists: the package's registry entry point resolves to
    `strangler.Estate` (the type name a defs.yaml uses)."""
    registered = discover_entry_point_package_objects()
    assert registered[EnvRegistryKey(name="Estate", namespace="strangler")] is Estate


def test_dg_project_declares_the_sample_estate_in_yaml(tmp_path: Path) -> None:
    _declare(_project(tmp_path), SPECS["sample"], {"spec": "strangler.yaml"})

    checked = _dg(tmp_path, "check", "yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr

    _assert_lists(_dg(tmp_path, "list", "defs", "--json"), SPECS["sample"])


def test_dg_scaffolds_an_estate_from_the_shop_monolith(postgres_url: str, tmp_path: Path) -> None:
    """`dg scaffold defs strangler.Estate estate --url ...` drafts the spec from the monolith's
    catalog (through its read-only role) and declares it; dg then lists its definitions."""
    defs = _project(tmp_path)
    with shop_monolith(postgres_url) as (_, reader, _dirt):
        params = json.dumps({"url": reader, "schemas": ["shop"]})
        scaffolded = _dg(
            tmp_path, "scaffold", "defs", "strangler.Estate", "estate", "--json-params", params
        )
        assert scaffolded.returncode == 0, scaffolded.stdout + scaffolded.stderr
    folder = defs / "estate"
    assert yaml.safe_load((folder / "defs.yaml").read_text()) == {
        "type": "strangler.Estate",
        "attributes": {"spec": "strangler.yaml"},
    }
    drafted = load_spec(folder / "strangler.yaml")
    assert {a.source.qualified for a in drafted.aggregates} == {
        a.source.qualified for a in load_spec(SHOP_SPEC).aggregates
    }

    _assert_lists(_dg(tmp_path, "list", "defs", "--json"), folder / "strangler.yaml")


def test_dg_check_yaml_names_a_wrong_attribute(tmp_path: Path) -> None:
    _declare(_project(tmp_path), SHOP_SPEC, {"spec_file": "strangler.yaml"})
    checked = _dg(tmp_path, "check", "yaml")
    assert checked.returncode != 0
    assert "spec_file" in checked.stdout + checked.stderr
