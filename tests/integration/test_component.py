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
from dagster.components.testing import create_defs_folder_sandbox

from strangler.component import Estate
from strangler.definitions import build_definitions
from strangler.settings import SAMPLE_SPEC, Settings
from strangler.spec import load_spec
from tests.definitions_snapshot import snapshot

SHOP_SPEC = Path(__file__).resolve().parents[1] / "schemas" / "shop" / "strangler.yaml"
SPECS = {"sample": Path(SAMPLE_SPEC), "shop": SHOP_SPEC}
DG = Path(sys.executable).parent / "dg"


@pytest.mark.parametrize("name", ["sample"])
def test_component_builds_the_definitions_of_its_spec(name: str, tmp_path: Path) -> None:
    """The component loaded from a defs.yaml (spec relative to it) builds what the repository's
    `build_definitions(spec, settings)` builds: assets, deps, partitions, checks and their
    blocking flags, sensors, jobs, and the same resources and executor."""
    with create_defs_folder_sandbox() as sandbox:
        folder = sandbox.defs_folder_path / "estate"
        folder.mkdir()
        shutil.copy(SPECS[name], folder / "strangler.yaml")
        (folder / "defs.yaml").write_text(
            yaml.safe_dump({"type": "strangler.Estate", "attributes": {"spec": "strangler.yaml"}})
        )
        with sandbox.load_component_and_build_defs(defs_path=folder) as (component, from_yaml):
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


def _project(root: Path, spec_file: Path, attributes: dict[str, object]) -> Path:
    """A minimal dg project using the component, with the spec beside its defs.yaml."""
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
    folder = package / "defs" / "estate"
    folder.mkdir(parents=True)
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
    shutil.copy(spec_file, folder / "strangler.yaml")
    (folder / "defs.yaml").write_text(
        yaml.safe_dump({"type": "strangler.Estate", "attributes": attributes})
    )
    (root / ".venv").symlink_to(sys.prefix)  # dg runs the project in its .venv: this one
    return folder


def _dg(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VIRTUAL_ENV": str(root / ".venv"), "NO_COLOR": "1"}
    return subprocess.run(
        [str(DG), *args], cwd=root, env=env, capture_output=True, text=True, timeout=180
    )


@pytest.mark.parametrize("name", ["sample"])
def test_dg_project_declares_the_estate_in_yaml(name: str, tmp_path: Path) -> None:
    _project(tmp_path, SPECS[name], {"spec": "strangler.yaml"})

    components = _dg(tmp_path, "list", "components", "--json")
    assert components.returncode == 0, components.stderr
    assert "strangler.Estate" in {c["key"] for c in json.loads(components.stdout)["items"]}

    checked = _dg(tmp_path, "check", "yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr

    listed = _dg(tmp_path, "list", "defs", "--json")
    assert listed.returncode == 0, listed.stderr
    seen = json.loads(listed.stdout)
    spec_file = SPECS[name]
    expected = snapshot(build_definitions(load_spec(spec_file), Settings(spec=spec_file)))
    assert {a["asset_key"]: sorted(a["dependency_keys"]) for a in seen["assets"]} == {
        key: asset["deps"] for key, asset in expected["assets"].items()
    }
    assert {c["key"] for c in seen["asset_checks"]} == set(expected["checks"])
    assert {s["name"] for s in seen["sensors"]} == set(expected["sensors"])
    assert {j["name"] for j in seen["jobs"]} == set(expected["jobs"])
    assert {r["name"] for r in seen["resources"]} >= {"postgres", "monolith", "kafka"}


def test_dg_check_yaml_names_a_wrong_attribute(tmp_path: Path) -> None:
    _project(tmp_path, SHOP_SPEC, {"spec_file": "strangler.yaml"})
    checked = _dg(tmp_path, "check", "yaml")
    assert checked.returncode != 0
    assert "spec_file" in checked.stdout + checked.stderr
