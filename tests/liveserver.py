"""A real `imgpipe serve` in a subprocess on a free loopback port, and the HTTP steps a user
takes against it: shared by the end-to-end and browser tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

IMGPIPE = [sys.executable, "-m", "imgpipe.entrypoints.cli"]
TERMINAL = {"PROCESSED", "FAILED"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)


def start_server(
    data_dir: Path,
    log: Path,
    workers: int = 2,
    env: Mapping[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> Server:
    """`env` is added to the server's environment (IMGPIPE_* settings); `preexec_fn` runs in
    the child before it starts (to lower a resource limit, say)."""
    port = free_port()
    env = {**os.environ, "IMGPIPE_LIMITS__PROCESSING_TIMEOUT_S": "60", **(env or {})}
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [
                *IMGPIPE,
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                "--workers",
                str(workers),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=preexec_fn,  # noqa: PLW1509 (a resource limit: one syscall after fork)
        )
    server = Server(f"http://127.0.0.1:{port}", data_dir, process, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"imgpipe serve exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"imgpipe serve did not come up: {log.read_text()[-3000:]}")


def stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(5)


def wait_terminal(
    client: httpx.Client, image_ids: list[str], timeout_s: float = 120
) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    records: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        for image_id in image_ids:
            if image_id not in records or records[image_id]["status"] not in TERMINAL:
                response = client.get(f"/images/{image_id}")
                if response.status_code == 200:
                    records[image_id] = response.json()
        if len(records) == len(image_ids) and all(
            r["status"] in TERMINAL for r in records.values()
        ):
            return records
        time.sleep(0.2)
    raise AssertionError(
        f"not terminal in {timeout_s}s: { {k: v['status'] for k, v in records.items()} }"
    )


def upload_multipart(client: httpx.Client, name: str, data: bytes, ctype: str) -> str:
    response = client.post("/images", files={"file": (name, data, ctype)})
    assert response.status_code == 202, response.text
    return str(response.json()["imageId"])


def upload_presigned(client: httpx.Client, name: str, data: bytes, ctype: str) -> str:
    ticket = client.post(
        "/uploads", json={"filename": name, "contentType": ctype, "size": len(data)}
    )
    assert ticket.status_code == 201, ticket.text
    body = ticket.json()
    put = httpx.request(body["method"], body["uploadUrl"], content=data, headers=body["headers"])
    assert put.status_code == 201, put.text
    return str(body["imageId"])
