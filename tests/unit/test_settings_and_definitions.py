"""Settings from the environment, and the whole `defs` loading under each executor."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from strangler.definitions import build_definitions, defs
from strangler.partitions import build_partitions
from strangler.resources.clickhouse_session import embedded_path, is_embedded
from strangler.settings import SAMPLE_SPEC, Settings
from strangler.spec import current_spec, load_spec
from strangler.stack.dagster_home import dagster_storage_url, write_dagster_home
from strangler.stack.process import StackError


def test_settings_read_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STRANGLER_HOME", str(tmp_path))
    monkeypatch.setenv("STRANGLER_KAFKA_BOOTSTRAP", "broker:9093")
    s = Settings()
    assert s.kafka_bootstrap == "broker:9093"
    assert s.clickhouse_url == f"chdb://{tmp_path}/stack/clickhouse"
    assert is_embedded(s.clickhouse_url)
    assert embedded_path(s.clickhouse_url) == tmp_path / "stack" / "clickhouse"


def test_server_dsn_is_not_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRANGLER_CLICKHOUSE_DSN", "http://127.0.0.1:8123")
    assert not is_embedded(Settings().clickhouse_url)


def test_secrets_stay_out_of_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRANGLER_KAFKA_SASL_PASSWORD", "hunter2")
    s = Settings()
    assert "hunter2" not in repr(s)
    resources = build_definitions(current_spec(), s).resources
    assert resources is not None
    assert "hunter2" not in repr(resources["kafka"])


def test_defs_load_and_validate() -> None:
    dg.Definitions.validate_loadable(defs)
    assert set(defs.resources or {}) >= {"postgres", "kafka", "clickhouse", "weaviate", "embedder"}


@pytest.mark.parametrize("executor", ["multiprocess", "in_process", "k8s"])
def test_definitions_build_under_every_executor(
    monkeypatch: pytest.MonkeyPatch, executor: str
) -> None:
    monkeypatch.setenv("STRANGLER_EXECUTOR", executor)
    built = build_definitions(current_spec(), Settings())
    dg.Definitions.validate_loadable(built)
    assert built.executor is not None


def test_dagster_home_points_at_stack_postgres(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STRANGLER_HOME", str(tmp_path))
    s = Settings()
    assert dagster_storage_url(s).endswith(f"/{s.dagster_postgres_db}")
    home = write_dagster_home(s)
    text = (home / "dagster.yaml").read_text()
    assert "postgres_db" in text and f"port: {s.postgres_port}" in text


def test_stack_error_names_step_and_log(tmp_path: Path) -> None:
    err = StackError(
        "kafka: install", "Maven could not resolve kafka_2.13:4.3.1", tmp_path / "kafka-install.log"
    )
    assert (
        str(err)
        == f"kafka: install: Maven could not resolve kafka_2.13:4.3.1 — see {tmp_path}/kafka-install.log"
    )


SPECS = {
    "sample": SAMPLE_SPEC,
    "shop": Path(__file__).resolve().parents[1] / "schemas" / "shop" / "strangler.yaml",
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_asset_is_documented_owned_kinded_and_partitioned(name: str) -> None:
    """The invariants a reader of the asset catalog relies on, for every asset of the sample's
    and the shop's definitions: partitioned by the spec's partitions, except reference data."""
    spec = load_spec(SPECS[name])
    partitions = build_partitions(spec)
    reference_topics = {f"kafka/{spec.topic_of(a.name)}" for a in spec.reference}
    graph = build_definitions(spec, Settings(spec=SPECS[name])).resolve_asset_graph()
    materializable = [
        graph.get(k) for k in graph.get_all_asset_keys() if graph.get(k).is_materializable
    ]
    assert len(materializable) >= 2 + len(spec.topics) + len(spec.searchable)
    for node in materializable:
        key = node.key.to_user_string()
        assert node.owners, f"{key} has no owners"
        assert node.group_name and node.group_name != "default", f"{key} has no group"
        assert node.code_version, f"{key} has no code version"
        assert node.description, f"{key} has no description"
        assert any(tag.startswith("dagster/kind/") for tag in node.tags), f"{key} has no kind"
        assert node.freshness_policy is not None, f"{key} has no freshness policy"
        if key.endswith("/reference") or key in reference_topics:
            assert node.partitions_def is None, f"{key} (reference data) is partitioned"
        else:
            assert node.partitions_def == partitions, f"{key} has not the spec's partitions"


def test_readme_documents_every_setting() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [
        f"STRANGLER_{name.upper()}"
        for name in Settings.model_fields
        if f"`STRANGLER_{name.upper()}`" not in readme
    ]
    assert missing == []
