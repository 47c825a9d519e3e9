"""Weaviate built from source with `go install` through the Go module proxy."""

from __future__ import annotations

import os
import shutil
from urllib.parse import urlparse

import httpx

from strangler.settings import Settings
from strangler.stack.process import (
    ServiceStatus,
    StackError,
    dir_size,
    process_alive,
    read_pid,
    run_logged,
    spawn,
    terminate,
    wait_until,
)

MODULE = "github.com/weaviate/weaviate/cmd/weaviate-server"


class WeaviateService:
    name = "weaviate"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.version = settings.weaviate_version
        self.bin_dir = settings.home / "weaviate" / self.version / "bin"
        self.binary = self.bin_dir / "weaviate-server"
        self.home_dir = settings.stack_dir / "weaviate"
        self.data_dir = self.home_dir / "data"
        self.pid_file = self.home_dir / "weaviate.pid"
        self.log_file = settings.logs_dir / "weaviate.log"
        self.install_log = settings.logs_dir / "weaviate-install.log"
        url = urlparse(settings.weaviate_url)
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or 8080

    def installed(self) -> bool:
        return self.binary.exists()

    def install(self) -> None:
        """`go install` the server once into the cache (about 5 minutes cold on 2 cores)."""
        if self.installed():
            return
        if shutil.which("go") is None:
            raise StackError(
                "weaviate: install", "the Go toolchain (`go`) is required", self.install_log
            )
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "GOBIN": str(self.bin_dir), "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
        try:
            run_logged(
                "weaviate: install",
                ["go", "install", f"{MODULE}@{self.version}"],
                self.install_log,
                env=env,
                timeout=3600,
            )
        except StackError as exc:
            raise StackError(
                "weaviate: install",
                f"`go install {MODULE}@{self.version}` failed",
                self.install_log,
            ) from exc

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED": "true",
            "PERSISTENCE_DATA_PATH": str(self.data_dir),
            "DEFAULT_VECTORIZER_MODULE": "none",
            "ENABLE_MODULES": "",
            "DISABLE_TELEMETRY": "true",
            "PROMETHEUS_MONITORING_ENABLED": "false",
            "QUERY_DEFAULTS_LIMIT": "25",
            "GRPC_PORT": str(self.settings.weaviate_grpc_port),
            "CLUSTER_HOSTNAME": "strangler-node1",
            "CLUSTER_IN_LOCALHOST": "true",
            "CLUSTER_ADVERTISE_ADDR": "127.0.0.1",
            "CLUSTER_GOSSIP_BIND_PORT": str(self.port + 10),
            "CLUSTER_DATA_BIND_PORT": str(self.port + 11),
            "RAFT_PORT": str(self.port + 12),
            "RAFT_INTERNAL_RPC_PORT": str(self.port + 13),
            "RAFT_BOOTSTRAP_EXPECT": "1",
            "RAFT_JOIN": "strangler-node1",
            "LOG_LEVEL": "warning",
            "GOMEMLIMIT": "2GiB",
        }

    def pid(self) -> int | None:
        return read_pid(self.pid_file, "weaviate-server")

    def start(self) -> None:
        pid = self.pid()
        if pid is None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            pid = spawn(
                [
                    str(self.binary),
                    "--host",
                    self.host,
                    "--port",
                    str(self.port),
                    "--scheme",
                    "http",
                ],
                self.log_file,
                self.pid_file,
                env=self._env(),
                cwd=self.home_dir,
            )
        wait_until(
            "weaviate: health (/v1/.well-known/ready)",
            self.healthy,
            120,
            self.log_file,
            alive=lambda: pid is not None and process_alive(pid),
        )

    def healthy(self) -> bool:
        response = httpx.get(f"http://{self.host}:{self.port}/v1/.well-known/ready", timeout=3)
        return response.status_code == 200

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            terminate(pid, timeout=60)
        self.pid_file.unlink(missing_ok=True)

    def status(self) -> ServiceStatus:
        pid = self.pid()
        healthy = False
        detail = ""
        if pid is not None:
            try:
                healthy = self.healthy()
            except httpx.HTTPError as exc:
                detail = str(exc)
        return ServiceStatus(
            self.name, self.version, f"{self.host}:{self.port}", pid, self.data_dir, healthy, detail
        )

    def install_size(self) -> int:
        return dir_size(self.bin_dir)
