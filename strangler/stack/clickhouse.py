"""Embedded ClickHouse (chdb): nothing to start, only a data dir to check."""

from __future__ import annotations

from strangler.resources.clickhouse_session import (
    ClickHouseLockTimeout,
    clickhouse_client,
    embedded_path,
    is_embedded,
)
from strangler.settings import Settings
from strangler.stack.process import ServiceStatus

PROBE_LOCK_TIMEOUT_S = 15.0
"""A health probe waits this long for the embedded engine; a busy engine is a working one."""


class ClickHouseService:
    name = "clickhouse"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dsn = settings.clickhouse_url
        self.data_dir = (
            embedded_path(self.dsn) if is_embedded(self.dsn) else settings.stack_dir / "clickhouse"
        )
        self.log_file = settings.logs_dir / "clickhouse.log"

    def installed(self) -> bool:
        return True

    def install(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        """Opening the engine proves it works; if another process holds it, it evidently does."""
        try:
            self.probe()
        except ClickHouseLockTimeout:
            return

    def stop(self) -> None:
        """In-process engine: nothing runs between operations."""

    def probe(self) -> str:
        with clickhouse_client(self.dsn, lock_timeout_s=PROBE_LOCK_TIMEOUT_S) as client:
            return str(client.command("SELECT version()"))

    def status(self) -> ServiceStatus:
        try:
            version, healthy, detail = self.probe(), True, ""
        except ClickHouseLockTimeout:
            version, healthy, detail = "in use", True, "held by another process right now"
        except Exception as exc:  # noqa: BLE001 - status reports, it does not raise
            version, healthy, detail = "unknown", False, str(exc)
        address = "embedded (chdb)" if is_embedded(self.dsn) else self.dsn
        return ServiceStatus(self.name, version, address, None, self.data_dir, healthy, detail)

    def install_size(self) -> int:
        return 0
