"""`strangler ui`: the Dagster webserver and daemon on the stack's Dagster instance.

Both processes read the same DAGSTER_HOME (dagster-postgres on the stack's Postgres, written by
`strangler stack up`), so runs launched from the CLI, from sensors and from the UI land in one
instance. The daemon is what dequeues runs (QueuedRunCoordinator), ticks sensors and executes
backfills: without it, "Materialize" in the UI queues runs that never start.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import httpx
import typer

from strangler.cli_errors import UNAVAILABLE
from strangler.settings import Settings, get_settings
from strangler.stack.dagster_home import event_batch_env

CODE_LOCATION = "strangler"
"""Same name as `code_location_name` in [tool.dagster], so URLs match `dagster dev`."""

MODULE = "strangler.definitions"


class UIError(RuntimeError):
    """The webserver or daemon did not come up; the message names the log to read."""


def repo_root() -> Path:
    """The checkout holding pyproject.toml: the code server's working directory."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def ui_host(settings: Settings) -> str:
    return settings.ui_host


def ui_port(settings: Settings) -> int:
    return settings.ui_port


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (tests run beside a developer's `strangler ui`)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def write_workspace(dagster_home: Path, working_directory: Path | None = None) -> Path:
    """workspace.yaml beside dagster.yaml, so webserver and daemon load the same location."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    path = dagster_home / "workspace.yaml"
    path.write_text(
        "# Written by `strangler ui`: the one code location of this repository.\n"
        "load_from:\n"
        "  - python_module:\n"
        f"      module_name: {MODULE}\n"
        f"      location_name: {CODE_LOCATION}\n"
        f"      working_directory: {working_directory or repo_root()}\n"
    )
    return path


def _executable(name: str) -> str:
    """The console script of this venv first: PATH may hold another Dagster."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise UIError(f"`{name}` is not installed (make venv)")
    return found


@dataclass
class DagsterUI:
    """A running webserver + daemon pair; `stop()` ends both process groups."""

    url: str
    dagster_home: Path
    log_dir: Path
    webserver: subprocess.Popen[bytes]
    daemon: subprocess.Popen[bytes]
    _stopped: bool = field(default=False, repr=False)

    @property
    def graphql_url(self) -> str:
        return f"{self.url}/graphql"

    def alive(self) -> bool:
        return self.webserver.poll() is None and self.daemon.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM each process group (code servers and run workers are in it), then SIGKILL."""
        if self._stopped:
            return
        self._stopped = True
        for proc in (self.daemon, self.webserver):
            _terminate_group(proc, timeout)


def _terminate_group(proc: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        proc.poll()
        return
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        proc.poll()
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(pgid, signal.SIGKILL)
        proc.wait(5)
    # Children (code server, run workers) may outlive the leader for a moment: kill the rest.
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return


def _spawn(
    command: list[str], log_file: Path, env: Mapping[str, str], cwd: Path
) -> subprocess.Popen[bytes]:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        log.write(f"\n$ {' '.join(command)}\n".encode())
        log.flush()
        return subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,  # its own process group, so stop() reaches its children
        )


def _server_info(url: str) -> bool:
    response = httpx.get(f"{url}/server_info", timeout=2.0)
    return response.status_code == 200 and "dagster_webserver_version" in response.text


def _location_loaded(url: str) -> bool:
    """The code location answers (not an error): the UI shows assets, not a load failure."""
    query = (
        "{ workspaceOrError { __typename ... on Workspace { locationEntries {"
        " name locationOrLoadError { __typename } } } } }"
    )
    response = httpx.post(f"{url}/graphql", json={"query": query}, timeout=10.0)
    entries = response.json()["data"]["workspaceOrError"].get("locationEntries", [])
    for entry in entries:
        if entry["name"] != CODE_LOCATION:
            continue
        kind = (entry.get("locationOrLoadError") or {}).get("__typename")
        if kind == "PythonError":
            raise UIError(f"code location {CODE_LOCATION} failed to load (see the webserver log)")
        return bool(kind == "RepositoryLocation")
    return False


def start_ui(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    dagster_home: Path | None = None,
    extra_env: Mapping[str, str] | None = None,
    log_dir: Path | None = None,
    timeout: float = 180.0,
) -> DagsterUI:
    """Start webserver + daemon in the background and wait until the UI serves the location.

    `dagster_home` defaults to the stack's (settings.dagster_home, written by `stack up`);
    tests pass a throwaway one. `extra_env` reaches both processes and the runs they launch
    (e.g. STRANGLER_POSTGRES_URL of a throwaway database).
    """
    host = host or ui_host(settings)
    port = port or ui_port(settings)
    home = dagster_home or settings.dagster_home
    if not (home / "dagster.yaml").exists():
        raise UIError(f"{home / 'dagster.yaml'} is missing: run `strangler stack up` first")
    if _port_in_use(host, port):
        raise UIError(f"{host}:{port} is in use (is `strangler ui` already running?)")
    logs = log_dir or settings.logs_dir
    workspace = write_workspace(home)
    root = repo_root()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        **event_batch_env(),
        **(extra_env or {}),
    }
    url = f"http://{host}:{port}"
    webserver = _spawn(
        [
            _executable("dagster-webserver"),
            "-h",
            host,
            "-p",
            str(port),
            "-w",
            str(workspace),
        ],
        logs / "dagster-webserver.log",
        env,
        root,
    )
    daemon = _spawn(
        [_executable("dagster-daemon"), "run", "-w", str(workspace)],
        logs / "dagster-daemon.log",
        env,
        root,
    )
    ui = DagsterUI(url=url, dagster_home=home, log_dir=logs, webserver=webserver, daemon=daemon)
    try:
        _wait(ui, lambda: _server_info(url) and _location_loaded(url), timeout)
    except BaseException:
        ui.stop()
        raise
    return ui


def _wait(ui: DagsterUI, ready: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "not ready"
    while time.monotonic() < deadline:
        if ui.webserver.poll() is not None:
            raise UIError(f"dagster-webserver exited; see {ui.log_dir / 'dagster-webserver.log'}")
        if ui.daemon.poll() is not None:
            raise UIError(f"dagster-daemon exited; see {ui.log_dir / 'dagster-daemon.log'}")
        try:
            if ready():
                return
        except httpx.HTTPError as exc:  # not listening yet: keep polling
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.5)
    raise UIError(
        f"{ui.url} not ready after {timeout:.0f}s ({last}); see {ui.log_dir}/dagster-webserver.log"
    )


@contextmanager
def running_ui(
    settings: Settings,
    *,
    port: int | None = None,
    dagster_home: Path | None = None,
    extra_env: Mapping[str, str] | None = None,
    log_dir: Path | None = None,
    timeout: float = 180.0,
) -> Iterator[DagsterUI]:
    """`start_ui` for a `with` block: both processes are stopped however the block ends."""
    ui = start_ui(
        settings,
        port=port,
        dagster_home=dagster_home,
        extra_env=extra_env,
        log_dir=log_dir,
        timeout=timeout,
    )
    try:
        yield ui
    finally:
        ui.stop()


class UIUnavailable(typer.TyperException):
    """The webserver or daemon did not come up or died: one line, exit 3."""

    exit_code = UNAVAILABLE


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
"""Besides Ctrl-C (SIGINT): a supervisor's or `kill`'s SIGTERM, a closed terminal's SIGHUP."""


class Stopped(SystemExit):
    """Raised by a stop signal, so `finally` stops the children; exit status 128 + signal."""


def _raise_stopped(signum: int, _frame: object) -> None:
    raise Stopped(128 + signum)


@contextmanager
def stop_signals_raise() -> Iterator[None]:
    """While the UI runs, every ordinary termination signal unwinds the stack like Ctrl-C.

    The webserver and daemon run in their own sessions (so Ctrl-C in the terminal reaches us,
    not them, and we stop them in order); the price is that no signal reaches them unless we
    pass it on, which is what unwinding into `DagsterUI.stop()` does.
    """
    previous = {sig: signal.signal(sig, _raise_stopped) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def ui_command(
    port: Annotated[
        int | None, typer.Option("--port", "-p", help="Port (default STRANGLER_UI_PORT, 3030).")
    ] = None,
    host: Annotated[str | None, typer.Option("--host", help="Interface to bind.")] = None,
) -> None:
    """Start the Dagster UI (webserver + daemon) on the stack's instance; Ctrl-C, SIGTERM or
    SIGHUP stops both."""
    settings = get_settings()
    try:
        with stop_signals_raise():
            _serve(settings, host, port)
    except Stopped:
        typer.echo("stopped the Dagster UI (signal)", err=True)
        raise


def _serve(settings: Settings, host: str | None, port: int | None) -> None:
    """Start both processes, wait until one dies or we are told to stop, then stop both."""
    try:
        ui = start_ui(settings, host=host, port=port)  # stops what it started if interrupted
    except UIError as exc:
        raise UIUnavailable(str(exc)) from exc
    typer.echo(f"Dagster UI: {ui.url}  (DAGSTER_HOME={ui.dagster_home}, logs in {ui.log_dir})")
    typer.echo("Ctrl-C stops the webserver and the daemon.")
    try:
        while ui.alive():
            time.sleep(1.0)
        raise UIUnavailable(f"a Dagster process exited; see {ui.log_dir}")
    except KeyboardInterrupt:
        typer.echo("stopping the Dagster UI ...", err=True)
    finally:
        for sig in STOP_SIGNALS:  # a second signal must not cut the stop short
            signal.signal(sig, signal.SIG_IGN)
        ui.stop()
