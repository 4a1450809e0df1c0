"""Local end to end and the API under load, against a real `imgpipe serve` on loopback.

    e2e(files)       start `imgpipe serve --workers 2` on a free 127.0.0.1 port with a fresh
                     data folder, upload every file with POST /images (multipart, one after
                     the other, as fast as the server takes them), ask every 0.25 s whether
                     any is still PENDING or PROCESSING, then read the records; throughput
                     from the first upload sent to the last record's processedAt (so the
                     poller's period is not counted), and upload-to-processed latency from
                     uploadedAt/processedAt
    api_load(server) wrk (Debian's package) against GET /images/{id} and GET /images?limit=50
                     for a bounded time, loopback only; req/s and p99

The per-client rate limit is switched off for this server only (IMGPIPE_SERVER__RATE_LIMIT_PER_S
=0): the load generator is one client.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

WORKERS = 2
POLL_S = 0.25


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(workers: int = WORKERS) -> Iterator[Server]:
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="imgpipe-bench-") as tmp:
        env = {
            **os.environ,
            "IMGPIPE_SERVER__RATE_LIMIT_PER_S": "0",
            "IMGPIPE_LOG_LEVEL": "WARNING",
        }
        log = (Path(tmp) / "serve.log").open("wb")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "imgpipe.entrypoints.cli",
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(Path(tmp) / "data"),
                "--workers",
                str(workers),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        server = Server(f"http://127.0.0.1:{port}", process)
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("imgpipe serve did not come up")
                try:
                    if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            yield server
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
            log.close()


@dataclass
class EndToEnd:
    images: int
    seconds: float  # first upload sent -> the last record's processedAt
    latencies_ms: list[float]  # processedAt - uploadedAt, per image
    render_ms: list[float]  # the records' durationMs
    ids: list[str]
    upload_seconds: float  # first upload sent -> last upload answered
    # CPU seconds over the same span (/proc): the serve process (API, job threads, watcher),
    # its rendering processes, and this benchmark's own client (uploads and polling)
    server_cpu_s: float = 0.0
    renderers_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    # the last image's finish minus the one before's: how long one image rendered alone at the
    # end while the other worker had nothing left to do; and that last image's own figures
    tail_s: float = 0.0
    last_bytes: int = 0
    last_render_ms: float = 0.0

    @property
    def per_second(self) -> float:
        return self.images / self.seconds

    @property
    def idle_s(self) -> float:
        """Core-seconds with no core busy: the two cores' time less every process' CPU."""
        return 2 * self.seconds - self.server_cpu_s - self.renderers_cpu_s - self.client_cpu_s

    def latency(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _cpu_snapshot(pid: int) -> tuple[float, dict[int, float]]:
    children = {}
    for child in _children(pid):
        try:
            children[child] = _cpu_s(child)
        except FileNotFoundError:  # gone between the listing and the read
            continue
    return _cpu_s(pid), children


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


BOUNDARY = "imgpipe-bench-0b2c8f6f1d9e4a7a"
MULTIPART_HEADERS = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


def _multipart(name: str, data: bytes) -> bytes:
    """A multipart/form-data body with one part, `file` (the boundary is not in any photo)."""
    assert BOUNDARY.encode() not in data
    head = (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def _unfinished(client: httpx.Client) -> bool:
    return any(
        client.get("/images", params={"status": status, "limit": 1}).json()["items"]
        for status in ("PENDING", "PROCESSING")  # in the order a record moves through them
    )


def _records(client: httpx.Client, wanted: set[str]) -> dict[str, dict[str, object]]:
    """The records of `wanted`, by imageId, from every page of GET /images."""
    records: dict[str, dict[str, object]] = {}
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/images", params=params).json()
        records.update((str(r["imageId"]), r) for r in page["items"] if r["imageId"] in wanted)
        cursor = page["nextCursor"]
        if not cursor:
            return records


def _wait_processed(client: httpx.Client, wanted: set[str]) -> dict[str, dict[str, object]]:
    """The records of `wanted` once all are PROCESSED (RuntimeError if one FAILED)."""
    deadline = time.monotonic() + 600
    while True:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(wanted)} uploads not all processed in time")
        if _unfinished(client):
            time.sleep(POLL_S)
            continue
        records = _records(client, wanted)
        failed = [r for r in records.values() if r["status"] == "FAILED"]
        if failed:
            raise RuntimeError(f"{failed[0]['imageId']} failed: {failed[0].get('error')}")
        done = [r for r in records.values() if r["status"] == "PROCESSED"]
        if len(done) == len(wanted):
            return records
        time.sleep(POLL_S)  # a retry put one back to PENDING between the two questions


def e2e(server: Server, files: list[Path]) -> EndToEnd:
    # The client is made light, since on these two cores its CPU counts against the pipeline:
    # the multipart bodies are built before the clock starts, and sent with http.client, one
    # sendall each (httpx cost this client 2.3 CPU-ms per upload, http.client 1.2).
    payloads = [_multipart(f.name, f.read_bytes()) for f in files]
    host, port = server.url.removeprefix("http://").split(":")
    uploads = http.client.HTTPConnection(host, int(port), timeout=60)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        server_cpu, renderers_cpu = _cpu_snapshot(server.process.pid)
        client_cpu = time.process_time()
        started_at = datetime.now(UTC)  # the records' clock: processedAt is this machine's
        started = time.perf_counter()
        ids = []
        for body in payloads:
            uploads.request("POST", "/images", body=body, headers=MULTIPART_HEADERS)
            response = uploads.getresponse()
            answer = response.read()
            if response.status != 202:
                raise RuntimeError(f"POST /images answered {response.status}: {answer[:200]!r}")
            ids.append(str(json.loads(answer)["imageId"]))
        uploaded = time.perf_counter() - started
        uploads.close()
        # Every 0.25 s, one question: is any upload still PENDING or PROCESSING (two pages of
        # at most one record)? Then the records are read once. The poller must not be what
        # loads the server: listing the whole batch at every poll cost the serve process
        # 1.7 core-ms and this client 0.8 per image of a 96-upload run (three pairs). The
        # clock stops at the records' processedAt, not here.
        records = _wait_processed(client, set(ids))
        client_cpu = time.process_time() - client_cpu
        server_after, renderers_after = _cpu_snapshot(server.process.pid)
    latencies = [
        (_when(str(r["processedAt"])) - _when(str(r["uploadedAt"]))).total_seconds() * 1000
        for r in records.values()
    ]
    render_ms = [float(r["durationMs"]) for r in records.values()]  # type: ignore[arg-type]
    by_finish = sorted(records.values(), key=lambda r: _when(str(r["processedAt"])))
    last = by_finish[-1]
    seconds = (_when(str(last["processedAt"])) - started_at).total_seconds()
    tail_s = (
        (_when(str(last["processedAt"])) - _when(str(by_finish[-2]["processedAt"]))).total_seconds()
        if len(by_finish) > 1
        else 0.0
    )
    return EndToEnd(
        len(ids),
        seconds,
        latencies,
        render_ms,
        ids,
        uploaded,
        server_cpu_s=server_after - server_cpu,
        # a renderer replaced mid-run (none is, unless one crashes) counts from zero
        renderers_cpu_s=sum(
            cpu - renderers_cpu.get(pid, 0.0) for pid, cpu in renderers_after.items()
        ),
        client_cpu_s=client_cpu,
        tail_s=tail_s,
        last_bytes=int(last["fileSize"]),  # type: ignore[call-overload]
        last_render_ms=float(last["durationMs"]),  # type: ignore[arg-type]
    )


@dataclass
class Load:
    route: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def api_load(server: Server, route: str, seconds: int = 10, connections: int = 8) -> Load:
    """wrk -t1 -c<connections> -d<seconds>s --latency on one route."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    done = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "--timeout",
            "5s",
            f"{server.url}{route}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    out = done.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return Load(route, rate, p50, p99, int(bad.group(1)) if bad else 0)


if __name__ == "__main__":
    import corpus

    photos = corpus.build()
    with serve() as srv:
        result = e2e(srv, photos)
        print(
            f"{result.images} images in {result.seconds:.2f} s = {result.per_second:.2f}/s; "
            f"latency p50 {result.latency(0.5):.0f} ms p95 {result.latency(0.95):.0f} ms; "
            f"render median {statistics.median(result.render_ms):.0f} ms; CPU s: server "
            f"{result.server_cpu_s:.2f}, renderers {result.renderers_cpu_s:.2f}, "
            f"client {result.client_cpu_s:.2f}"
        )
        for path in (f"/images/{result.ids[0]}", "/images?limit=50"):
            print(api_load(srv, path, seconds=5))
