"""Starting, finding and stopping the stack's background processes."""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil


class StackError(RuntimeError):
    """A stack step failed; the message names the step, the command and the log to read."""

    def __init__(self, step: str, detail: str, log_file: Path | None = None) -> None:
        where = f" — see {log_file}" if log_file else ""
        super().__init__(f"{step}: {detail}{where}")
        self.step = step
        self.log_file = log_file


@dataclass(frozen=True)
class ServiceStatus:
    """One row of `strangler stack status`."""

    name: str
    version: str
    address: str
    pid: int | None
    data_dir: Path
    healthy: bool
    detail: str = ""


def run_logged(
    step: str,
    command: Sequence[str],
    log_file: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
    user: str | None = None,
) -> None:
    """Run a one-shot command, appending its output to `log_file`; raise StackError on failure."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    uid = gid = None
    extra_groups: list[int] | None = None
    if user is not None:
        entry = pwd.getpwnam(user)
        uid, gid, extra_groups = entry.pw_uid, entry.pw_gid, []
    with log_file.open("ab") as log:
        log.write(f"\n$ {' '.join(command)}\n".encode())
        log.flush()
        try:
            completed = subprocess.run(
                list(command),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                timeout=timeout,
                check=False,
                user=uid,
                group=gid,
                extra_groups=extra_groups,
            )
        except subprocess.TimeoutExpired as exc:
            raise StackError(step, f"`{command[0]}` timed out after {timeout}s", log_file) from exc
        except FileNotFoundError as exc:
            raise StackError(step, f"`{command[0]}` is not installed", log_file) from exc
    if completed.returncode != 0:
        raise StackError(
            step, f"`{' '.join(command)}` exited with {completed.returncode}", log_file
        )


def spawn(
    command: Sequence[str],
    log_file: Path,
    pid_file: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start a long-running process in its own session so it outlives the caller."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    _rotate(log_file)
    with log_file.open("ab") as log:
        proc = subprocess.Popen(
            list(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    pid_file.write_text(str(proc.pid))
    return proc.pid


LOG_ROTATE_BYTES = 64 * 1024 * 1024
"""A service log larger than this at start moves aside to `<name>.1` (one generation kept)."""


def _rotate(log_file: Path) -> None:
    if log_file.exists() and log_file.stat().st_size > LOG_ROTATE_BYTES:
        log_file.replace(log_file.with_name(log_file.name + ".1"))


def read_pid(pid_file: Path, must_contain: str) -> int | None:
    """The pid in `pid_file` if that process is alive and its command line contains a marker."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        if must_contain not in " ".join(proc.cmdline()):
            return None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return pid


def process_alive(pid: int) -> bool:
    """The spawned process still runs (between fork and exec its command line is not yet
    the service's, so this must not look at it)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def terminate(pid: int, timeout: float = 30.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left after `timeout`."""
    try:
        pgid = os.getpgid(pid)
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        psutil.Process(pid).wait(timeout)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired:
        os.killpg(pgid, signal.SIGKILL)
        try:
            psutil.Process(pid).wait(10)
        except psutil.NoSuchProcess:
            return


def wait_until(
    step: str,
    check: Callable[[], bool],
    timeout: float,
    log_file: Path,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Poll `check` until it passes; fail early if the process died."""
    deadline = time.monotonic() + timeout
    last_error = "not ready"
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - any failure of a probe means "not ready yet"
            last_error = f"{type(exc).__name__}: {exc}"
        if alive is not None and not alive():
            raise StackError(step, "the process exited during start-up", log_file)
        time.sleep(0.5)
    raise StackError(step, f"not healthy after {timeout:.0f}s ({last_error})", log_file)


def dir_size(path: Path) -> int:
    """Bytes under `path` (0 if missing)."""
    if not path.exists():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
