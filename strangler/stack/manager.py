"""`strangler stack up | down | status | logs`: idempotent, and safe from many processes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from filelock import FileLock

from strangler.settings import Settings
from strangler.stack.clickhouse import ClickHouseService
from strangler.stack.dagster_home import write_dagster_home
from strangler.stack.kafka import KafkaService
from strangler.stack.postgres import PostgresService
from strangler.stack.process import ServiceStatus
from strangler.stack.weaviate import WeaviateService


class Service(Protocol):
    name: str

    def installed(self) -> bool: ...
    def install(self) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def status(self) -> ServiceStatus: ...
    def install_size(self) -> int: ...


@dataclass(frozen=True)
class StepTiming:
    service: str
    action: str
    seconds: float


class Stack:
    """The four local services, in start order."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.services: list[Service] = [
            PostgresService(settings),
            KafkaService(settings),
            WeaviateService(settings),
            ClickHouseService(settings),
        ]
        settings.home.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(settings.home / "stack.lock"))

    def service(self, name: str) -> Service:
        for s in self.services:
            if s.name == name:
                return s
        raise KeyError(
            f"unknown service {name!r}; known: {', '.join(s.name for s in self.services)}"
        )

    @contextmanager
    def locked(self, timeout: float = 3600) -> Iterator[None]:
        """One stack operation at a time across processes (tests run many)."""
        with self._lock.acquire(timeout=timeout):
            yield

    def up(self, only: list[str] | None = None) -> list[StepTiming]:
        timings: list[StepTiming] = []
        with self.locked():
            for service in self.services:
                if only and service.name not in only:
                    continue
                started = time.monotonic()
                service.install()
                timings.append(StepTiming(service.name, "install", time.monotonic() - started))
                started = time.monotonic()
                service.start()
                timings.append(StepTiming(service.name, "start", time.monotonic() - started))
            write_dagster_home(self.settings)
        return timings

    def down(self, only: list[str] | None = None) -> None:
        with self.locked():
            for service in reversed(self.services):
                if only and service.name not in only:
                    continue
                service.stop()

    def status(self) -> list[ServiceStatus]:
        return [s.status() for s in self.services]

    def all_healthy(self) -> bool:
        return all(s.healthy for s in self.status())
