"""`strangler ui` leaves no orphan: SIGTERM and SIGHUP stop the webserver and the daemon.

The two run in sessions of their own (so Ctrl-C reaches `strangler ui`, which stops them in
order); a supervisor's SIGTERM or a closed terminal's SIGHUP used to end only `strangler ui`
and leave both running. Here the real command runs as a subprocess on a throwaway Dagster
instance, gets the signal, and every process of both sessions must be gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from strangler.ui import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

STRANGLER = str(Path(sys.executable).parent / "strangler")
START_TIMEOUT_S = 240.0


def _serving(url: str) -> bool:
    try:
        return httpx.get(f"{url}/server_info", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _sessions_of(children: list[psutil.Process]) -> set[int]:
    return {os.getsid(p.pid) for p in children}


def _alive_in(sessions: set[int]) -> list[psutil.Process]:
    alive = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getsid(proc.pid) in sessions and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return alive


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_signal_stops_webserver_and_daemon(sig: signal.Signals, dagster_home: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "STRANGLER_HOME": str(dagster_home.parent)}
    ui = subprocess.Popen(
        [STRANGLER, "ui", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    sessions: set[int] = set()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _serving(url):
            assert ui.poll() is None, ui.communicate()
            assert time.monotonic() < deadline, "the UI did not come up"
            time.sleep(1.0)
        children = psutil.Process(ui.pid).children()
        names = " ".join(" ".join(c.cmdline()) for c in children)
        assert "dagster-webserver" in names and "dagster-daemon" in names, names
        sessions = _sessions_of(children)
        assert os.getsid(ui.pid) not in sessions  # their own sessions: no signal reaches them

        ui.send_signal(sig)
        out, err = ui.communicate(timeout=60)
        assert ui.returncode == 128 + sig, out + err
        assert "stopped the Dagster UI (signal)" in err
        left = _alive_in(sessions)
        assert not left, [" ".join(p.cmdline()) for p in left]
        assert not _serving(url)
    finally:
        if ui.poll() is None:
            ui.kill()
            ui.wait(10)
        for proc in _alive_in(sessions):  # only if the test failed: leave nothing behind
            proc.kill()
