"""The deployment files parse and say what Dagster, Helm and Compose expect (no engine here).

Nothing here runs a container: there is no Docker engine or Kubernetes in CI. Each file is
checked against the strongest validator available offline: Dagster's own instance-config
validation for dagster.yaml, Dagster's config schema for the K8sRunLauncher, Settings for every
STRANGLER_* variable, and for the Helm values a key schema written from the chart's own schema
models (helm/dagster/schema in dagster-io/dagster, chart 1.13.x), below.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster_k8s import K8sRunLauncher
from dagster_postgres.utils import pg_config, pg_url_from_config

from strangler.definitions import build_definitions
from strangler.settings import Settings
from strangler.spec import current_spec

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PG_ENV = {
    "DAGSTER_PG_HOST": "postgres",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_USER": "dagster",
    "DAGSTER_PG_PASSWORD": "secret",
    "DAGSTER_PG_DB": "dagster",
}
K8S_ENV = {
    "DAGSTER_CODE_IMAGE": "registry.example.com/strangler:0.1.0",
    "DAGSTER_K8S_NAMESPACE": "data",
}


def _yaml(path: Path) -> Any:
    with path.open() as handle:
        return yaml.safe_load(handle)


@pytest.fixture
def deploy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**PG_ENV, **K8S_ENV}.items():
        monkeypatch.setenv(name, value)


def _validated_instance_config(text: str, tmp_path: Path) -> Mapping[str, Any]:
    """Dagster's own loader: the same code `DagsterInstance.get()` runs on DAGSTER_HOME."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(text)
    config, custom_class = dagster_instance_config(str(home))
    assert custom_class is None
    return config


# --- deploy/dagster.yaml ---------------------------------------------------------------------


def test_production_dagster_yaml_passes_dagster_validation(
    deploy_env: None, tmp_path: Path
) -> None:
    config = _validated_instance_config((DEPLOY / "dagster.yaml").read_text(), tmp_path)
    assert set(config["storage"]) == {"postgres"}
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"]["runs"]["max_concurrent_runs"] > 0
    assert config["concurrency"]["pools"]["default_limit"] >= 1
    # Dagster 1.13 rejects max_concurrent_runs under run_coordinator when concurrency is set.
    assert "max_concurrent_runs" not in (config["run_coordinator"].get("config") or {})


def test_production_storage_and_secrets_come_from_env(deploy_env: None, tmp_path: Path) -> None:
    config = _validated_instance_config((DEPLOY / "dagster.yaml").read_text(), tmp_path)
    pg = config["storage"]["postgres"]["postgres_db"]
    for key, env in {
        "hostname": "DAGSTER_PG_HOST",
        "port": "DAGSTER_PG_PORT",
        "username": "DAGSTER_PG_USER",
        "password": "DAGSTER_PG_PASSWORD",
        "db_name": "DAGSTER_PG_DB",
    }.items():
        assert pg[key] == {"env": env}, key
    # dagster-postgres resolves the env references and builds its URL (no connection opened).
    resolved = process_config(pg_config(), config["storage"]["postgres"])
    assert resolved.success, resolved.errors
    assert resolved.value is not None
    assert pg_url_from_config(resolved.value) == (
        "postgresql://dagster:secret@postgres:5432/dagster?sslmode=prefer"
    )


def test_k8s_run_launcher_config_matches_its_schema(deploy_env: None, tmp_path: Path) -> None:
    config = _validated_instance_config((DEPLOY / "dagster.yaml").read_text(), tmp_path)
    launcher = config["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    result = process_config(K8sRunLauncher.config_type(), launcher["config"])
    assert result.success, result.errors
    value = result.value
    assert value is not None
    assert value["job_image"] == K8S_ENV["DAGSTER_CODE_IMAGE"]
    assert value["job_namespace"] == K8S_ENV["DAGSTER_K8S_NAMESPACE"]
    assert "strangler-env" in value["env_secrets"]


def test_k8s_run_launcher_rejects_an_unknown_key() -> None:
    """The schema check above has teeth."""
    result = process_config(
        K8sRunLauncher.config_type(), {"instance_config_map": "x", "job_imag": "typo"}
    )
    assert not result.success


def test_stack_dagster_yaml_also_validates(tmp_path: Path) -> None:
    """`strangler stack up` writes the local instance; it must load with the same validator."""
    from strangler.stack.dagster_home import write_dagster_home

    home = write_dagster_home(Settings(home=tmp_path / "stranglerhome"))
    config = _validated_instance_config((home / "dagster.yaml").read_text(), tmp_path)
    assert set(config["storage"]) == {"postgres"}


# --- Definitions per executor ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("executor", "expected"),
    [
        ("k8s", "k8s"),
        ("multiprocess", "multiprocess"),
        ("in_process", "in_process"),
    ],
)
def test_definitions_build_for_each_executor(executor: str, expected: str) -> None:
    defs = build_definitions(current_spec(), Settings(executor=executor))  # type: ignore[arg-type]
    repo = defs.get_repository_def()  # resolves every asset, check and resource binding
    job = repo.get_implicit_global_asset_job_def()
    assert job.executor_def.name == expected
    assert repo.asset_graph.get_all_asset_keys()


def test_k8s_executor_is_k8s_job_executor_with_valid_job_config() -> None:
    """The rendered K8s job config: what each step pod would get, validated by dagster-k8s."""
    from dagster_k8s import k8s_job_executor

    defs = build_definitions(current_spec(), Settings(executor="k8s"))
    job = defs.get_repository_def().get_implicit_global_asset_job_def()
    assert job.executor_def is k8s_job_executor
    step_config = {
        "job_namespace": "data",
        "env_secrets": ["strangler-env"],
        "max_concurrent": 4,
        "step_k8s_config": {
            "container_config": {"resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}
        },
    }
    result = process_config(k8s_job_executor.config_schema.config_type, step_config)
    assert result.success, result.errors


# --- deploy/helm/values.yaml -----------------------------------------------------------------

ANY = None
"""A value the schema does not look into (a Kubernetes object the chart passes through)."""

IMAGE = {"repository": ANY, "tag": ANY, "pullPolicy": ANY}
SECRET_REF = {"name": ANY}
ENV_VAR = {"name": ANY, "value": ANY, "valueFrom": ANY}

HELM_SCHEMA: dict[str, Any] = {
    # Keys of the dagster chart's values that this project may set, with their sub-keys; from
    # helm/dagster/schema/schema/charts/**.py (pydantic models that generate the chart's
    # values.schema.json). A dict is a nested object, a list a list of such objects, ANY opaque.
    "global": {
        "postgresqlSecretName": ANY,
        "dagsterHome": ANY,
        "serviceAccountName": ANY,
        "celeryConfigSecretName": ANY,
        "dagsterInstanceConfigMap": ANY,
    },
    "generatePostgresqlPasswordSecret": ANY,
    "postgresql": {
        "image": ANY,
        "enabled": ANY,
        "postgresqlHost": ANY,
        "postgresqlUsername": ANY,
        "postgresqlPassword": ANY,
        "postgresqlDatabase": ANY,
        "postgresqlParams": ANY,
        "postgresqlScheme": ANY,
        "service": {"port": ANY},
    },
    "dagster-user-deployments": {
        "enabled": ANY,
        "enableSubchart": ANY,
        "imagePullSecrets": ANY,
        "deployments": [
            {
                "name": ANY,
                "image": IMAGE,
                "dagsterApiGrpcArgs": ANY,
                "codeServerArgs": ANY,
                "includeConfigInLaunchedRuns": {"enabled": ANY},
                "port": ANY,
                "env": [ENV_VAR],
                "envConfigMaps": [SECRET_REF],
                "envSecrets": [SECRET_REF],
                "annotations": ANY,
                "nodeSelector": ANY,
                "affinity": ANY,
                "tolerations": ANY,
                "podSecurityContext": ANY,
                "securityContext": ANY,
                "resources": ANY,
                "livenessProbe": ANY,
                "readinessProbe": ANY,
                "startupProbe": ANY,
                "labels": ANY,
                "volumeMounts": ANY,
                "volumes": ANY,
                "schedulerName": ANY,
            }
        ],
    },
    "dagsterWebserver": {
        "replicaCount": ANY,
        "image": IMAGE,
        "service": ANY,
        "env": ANY,
        "envConfigMaps": ANY,
        "envSecrets": ANY,
        "resources": ANY,
        "readOnly": ANY,
        "workspace": ANY,
        "enableReadOnly": ANY,
        "dbStatementTimeout": ANY,
        "dbPoolRecycle": ANY,
        "logLevel": ANY,
        "nodeSelector": ANY,
        "affinity": ANY,
        "tolerations": ANY,
        "annotations": ANY,
        "labels": ANY,
    },
    "runLauncher": {
        "type": ANY,
        "config": {
            "k8sRunLauncher": {
                "image": IMAGE,
                "imagePullPolicy": ANY,
                "jobNamespace": ANY,
                "loadInclusterConfig": ANY,
                "kubeconfigFile": ANY,
                "envConfigMaps": [SECRET_REF],
                "envSecrets": [SECRET_REF],
                "envVars": ANY,
                "volumeMounts": ANY,
                "volumes": ANY,
                "labels": ANY,
                "failPodOnRunFailure": ANY,
                "resources": ANY,
                "schedulerName": ANY,
                "securityContext": ANY,
                "runK8sConfig": {
                    "containerConfig": ANY,
                    "podSpecConfig": ANY,
                    "podTemplateSpecMetadata": ANY,
                    "jobSpecConfig": ANY,
                    "jobMetadata": ANY,
                },
            },
        },
    },
    "dagsterDaemon": {
        "enabled": ANY,
        "image": IMAGE,
        "runCoordinator": {
            "enabled": ANY,
            "type": ANY,
            "config": {
                "queuedRunCoordinator": {
                    "maxConcurrentRuns": ANY,
                    "tagConcurrencyLimits": ANY,
                    "dequeueIntervalSeconds": ANY,
                    "dequeueNumWorkers": ANY,
                    "dequeueUseThreads": ANY,
                }
            },
        },
        "heartbeatTolerance": ANY,
        "env": ANY,
        "envConfigMaps": ANY,
        "envSecrets": ANY,
        "resources": ANY,
        "runMonitoring": ANY,
        "runRetries": ANY,
        "sensors": ANY,
        "schedules": ANY,
    },
    "concurrency": {
        "enabled": ANY,
        "pools": {"defaultLimit": ANY, "granularity": ANY, "opGranularityRunBuffer": ANY},
        "runs": {
            "maxConcurrentRuns": ANY,
            "tagConcurrencyLimits": [{"key": ANY, "value": ANY, "limit": ANY}],
        },
    },
    "telemetry": {"enabled": ANY},
    "serviceAccount": ANY,
    "imagePullSecrets": ANY,
    "additionalInstanceConfig": ANY,
}


def _unknown_keys(value: Any, schema: Any, path: str = "") -> Iterator[str]:
    if schema is ANY:
        return
    if isinstance(schema, list):
        assert isinstance(value, list), f"{path} must be a list"
        for i, item in enumerate(value):
            yield from _unknown_keys(item, schema[0], f"{path}[{i}]")
        return
    assert isinstance(value, dict), f"{path} must be a mapping"
    for key, sub in value.items():
        where = f"{path}.{key}" if path else key
        if key not in schema:
            yield where
        else:
            yield from _unknown_keys(sub, schema[key], where)


def test_helm_values_use_only_chart_keys() -> None:
    values = _yaml(DEPLOY / "helm" / "values.yaml")
    assert list(_unknown_keys(values, HELM_SCHEMA)) == []


def test_helm_schema_catches_a_misspelt_key() -> None:
    assert list(_unknown_keys({"runLauncher": {"typ": "x"}}, HELM_SCHEMA)) == ["runLauncher.typ"]


def test_helm_values_wire_the_code_location_and_launcher() -> None:
    values = _yaml(DEPLOY / "helm" / "values.yaml")
    deployments = values["dagster-user-deployments"]["deployments"]
    assert [d["name"] for d in deployments] == ["strangler"]
    location = deployments[0]
    assert location["codeServerArgs"] == ["-m", "strangler.definitions"]
    assert {"repository", "tag"} <= set(location["image"])
    assert {"name": "strangler-env"} in location["envSecrets"]
    assert {"name": "STRANGLER_EXECUTOR", "value": "k8s"} in location["env"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert "image" not in values["runLauncher"]["config"]["k8sRunLauncher"], (
        "runs must use the code location's image"
    )
    # One place for run limits: the chart's concurrency block, not the coordinator's.
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert "maxConcurrentRuns" not in queued
    assert values["concurrency"]["enabled"] is True
    assert values["postgresql"]["enabled"] is False
    assert values["generatePostgresqlPasswordSecret"] is False


def test_helm_and_instance_yaml_agree_on_limits(deploy_env: None, tmp_path: Path) -> None:
    values = _yaml(DEPLOY / "helm" / "values.yaml")["concurrency"]
    instance = _validated_instance_config((DEPLOY / "dagster.yaml").read_text(), tmp_path)
    assert (
        values["runs"]["maxConcurrentRuns"]
        == instance["concurrency"]["runs"]["max_concurrent_runs"]
    )
    assert values["pools"]["defaultLimit"] == instance["concurrency"]["pools"]["default_limit"]


# --- deploy/docker-compose.yml ---------------------------------------------------------------

COMPOSE_SERVICE_KEYS = {
    "image",
    "build",
    "command",
    "environment",
    "configs",
    "volumes",
    "ports",
    "depends_on",
    "healthcheck",
    "ulimits",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = _yaml(DEPLOY / "docker-compose.yml")
    assert isinstance(data, dict)
    return data


def test_compose_has_the_whole_estate(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {
        "postgres",
        "kafka",
        "clickhouse",
        "weaviate",
        "strangler-code",
        "dagster-webserver",
        "dagster-daemon",
    } <= set(services)
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        assert set(service) <= COMPOSE_SERVICE_KEYS, (name, set(service) - COMPOSE_SERVICE_KEYS)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft


def test_compose_references_resolve(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dep in service.get("depends_on", {}):
            assert dep in services, (name, dep)
        for config in service.get("configs", []):
            assert config["source"] in compose["configs"], (name, config)
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in compose["volumes"], (name, source)
    build = services["strangler-code"]["build"]
    context = (DEPLOY / build["context"]).resolve()
    assert (context / build["dockerfile"]).is_file()
    assert (context / "requirements.lock").is_file()


def test_compose_strangler_settings_are_real_settings(compose: dict[str, Any]) -> None:
    fields = set(Settings.model_fields)
    text = (DEPLOY / "docker-compose.yml").read_text()
    used = set(re.findall(r"\bSTRANGLER_([A-Z0-9_]+)\b", text))
    assert used, "compose passes no settings"
    unknown = {name for name in used if name.lower() not in fields}
    assert unknown == set(), f"STRANGLER_* not in Settings: {sorted(unknown)}"
    env = compose["services"]["strangler-code"]["environment"]
    # The values parse as Settings (types, literals), i.e. the code location would start.
    settings_env = {
        k.removeprefix("STRANGLER_").lower(): v
        for k, v in env.items()
        if k.startswith("STRANGLER_") and "${" not in str(v)
    }
    settings = Settings(**settings_env)
    assert settings.clickhouse_url.startswith("http://")
    assert settings.executor == "multiprocess"


def test_every_strangler_variable_in_deploy_is_a_setting() -> None:
    fields = set(Settings.model_fields)
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            for name in re.findall(r"\bSTRANGLER_([A-Z0-9_]+)\b", path.read_text()):
                assert name.lower() in fields, f"{path.name}: STRANGLER_{name}"


def test_compose_dagster_yaml_passes_dagster_validation(
    compose: dict[str, Any], deploy_env: None, tmp_path: Path
) -> None:
    config = _validated_instance_config(compose["configs"]["dagster_yaml"]["content"], tmp_path)
    assert set(config["storage"]) == {"postgres"}
    workspace = yaml.safe_load(compose["configs"]["workspace_yaml"]["content"])
    (grpc,) = [entry["grpc_server"] for entry in workspace["load_from"]]
    assert grpc["host"] == "strangler-code"
    assert grpc["location_name"] == "strangler"
    code_command = ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", str(grpc["port"])]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert all(part in dockerfile for part in code_command)


def test_compose_clickhouse_uses_the_server_over_http(compose: dict[str, Any]) -> None:
    env = compose["services"]["strangler-code"]["environment"]
    assert env["STRANGLER_CLICKHOUSE_DSN"].startswith("http://")
    assert "clickhouse" in env["STRANGLER_CLICKHOUSE_DSN"]


# --- deploy/Dockerfile -----------------------------------------------------------------------


def test_dockerfile_builds_the_code_location() -> None:
    lines = [
        line.strip()
        for line in (DEPLOY / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert lines[0] == "FROM python:3.11-slim"
    text = "\n".join(lines)
    assert "requirements.lock" in text
    assert re.search(r"uv pip install --system --no-deps -e \.", text)
    cmd = next(line for line in lines if line.startswith("CMD"))
    assert '"code-server", "start"' in cmd and '"strangler.definitions"' in cmd
    root = DEPLOY.parent
    for line in lines:
        if line.startswith("COPY"):
            for source in line.split()[1:-1]:
                assert (root / source).exists(), source


def test_install_browser_script_is_executable() -> None:
    script = DEPLOY.parent / "scripts" / "install-browser.sh"
    assert script.stat().st_mode & 0o111
    assert shutil.which("bash")
    assert "chromium-driver" in script.read_text()


def test_dagster_version_matches_the_chart_pin() -> None:
    """values.yaml documents chart 1.13.27: it must match the Dagster the image installs."""
    assert dg.__version__ == "1.13.27"
    assert "--version 1.13.27" in (DEPLOY / "helm" / "values.yaml").read_text()
