"""The `imgpipe serve` under soak: started, stopped, killed and started again on one data
folder and one loopback port; its rendering processes and memory read from /proc."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

IMGPIPE = [sys.executable, "-m", "imgpipe.entrypoints.cli"]
START_TIMEOUT_S = 90.0  # a start backfills every original in the folder first
STOP_TIMEOUT_S = 20.0
ORPHAN_GRACE_S = 5.0  # a rendering process ends by itself once its server's socket closes


class ServerError(RuntimeError):
    """The server did not come up, or died where it should not have."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (the server's rendering processes)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry))
    return sorted(found)


def rss_mb(pid: int) -> float:
    """Resident memory of one process in MB; 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


class Serve:
    """One data folder, one port; `start` may be called again after `stop` or `kill`."""

    def __init__(self, data_dir: Path, log: Path, workers: int = 2) -> None:
        self.data_dir = data_dir
        self.log = log
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        if self.process is None or self.process.poll() is not None:
            raise ServerError(f"the server is not running; see {self.log}")
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_code(self) -> int | None:
        """How it ended (-N: killed by signal N), or None while it runs."""
        return None if self.process is None else self.process.poll()

    def start(self, workers: int | None = None) -> None:
        self.workers = workers or self.workers
        # The server runs on its defaults: none of the caller's IMGPIPE_* settings.
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMGPIPE_")}
        argv = [*IMGPIPE, "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [*argv, "--workers", str(self.workers)],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # the harness's Ctrl-C is for the harness to handle
            )
        self.starts += 1
        self._wait_listening()

    def _wait_listening(self) -> None:
        """Up once it answers at all: uvicorn listens only after the app's startup."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise ServerError(f"imgpipe serve exited at start:\n{self.log_tail()}")
            try:
                httpx.get(f"{self.url}/health", timeout=2)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.kill()
        raise ServerError(f"imgpipe serve did not come up:\n{self.log_tail()}")

    def stop(self) -> None:
        """Ctrl-C, as an operator stops it; killed if it has not ended in time."""
        if not self.running():
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> int:
        """kill -9 with no chance to clean up; returns how many of its rendering processes
        were still alive ORPHAN_GRACE_S later (they are killed then)."""
        if not self.running():
            return 0
        assert self.process is not None
        renderers = children(self.process.pid)
        self.process.kill()
        self.process.wait(10)
        deadline = time.monotonic() + ORPHAN_GRACE_S
        while renderers and time.monotonic() < deadline:
            renderers = [pid for pid in renderers if Path(f"/proc/{pid}").exists()]
            time.sleep(0.1)
        for pid in renderers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(renderers)

    def renderers(self) -> list[int]:
        return children(self.pid) if self.running() else []

    def memory(self) -> tuple[float, float, int]:
        """(server RSS MB, its rendering processes' RSS MB together, the server's open fds)."""
        if not self.running():
            return 0.0, 0.0, 0
        pid = self.pid
        return rss_mb(pid), sum(rss_mb(c) for c in children(pid)), open_fds(pid)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""
