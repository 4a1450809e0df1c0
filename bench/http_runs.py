"""Sequential GETs against a server on loopback, from the other core: each request's latency
and bytes, the pass's wall time and the server's CPU over it.

    get_pass(server, paths)   one connection (keep-alive), each path in turn, the next sent
                              when the last answer is read in full; a non-200 answer raises
                              PeerError with its status and the start of its body
"""

from __future__ import annotations

import http.client
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from peer_servers import Server
from procs import tree_cpu_s

CLIENT_CORE = 1  # the servers are pinned to core 0
REQUEST_TIMEOUT_S = 120  # a hang guard, far above any render here


class PeerError(RuntimeError):
    """A server answered something other than 200 (the message goes on the page)."""


@dataclass(frozen=True)
class Pass:
    seconds: float  # the first request sent -> the last answer read
    latencies_ms: list[float]
    sizes: list[int]  # each answer's body, bytes
    server_cpu_s: float  # the server's process tree over the pass

    @property
    def per_second(self) -> float:
        return len(self.latencies_ms) / self.seconds

    @property
    def cpu_ms(self) -> float:
        """The server's CPU per request."""
        return self.server_cpu_s * 1000 / len(self.latencies_ms)

    def latency(self, q: float) -> float:
        """The q-quantile of the latencies (nearest rank)."""
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextmanager
def on_client_core() -> Iterator[None]:
    """This thread on the client's core while the block runs (where there is one to spare)."""
    before = os.sched_getaffinity(0)
    if CLIENT_CORE in before and len(before) > 1:
        os.sched_setaffinity(0, {CLIENT_CORE})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _connect(server: Server) -> http.client.HTTPConnection:
    host, port = server.url.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=REQUEST_TIMEOUT_S)


def _get(conn: http.client.HTTPConnection, path: str) -> bytes:
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    if response.status != 200:
        raise PeerError(f"GET {path} answered {response.status}: {body[:200]!r}")
    return body


def get_pass(server: Server, paths: list[str], limit_s: float | None = None) -> Pass:
    """Each path in turn on one connection; stops early once `limit_s` has passed."""
    latencies, sizes = [], []
    conn = _connect(server)
    with on_client_core():
        cpu_before = tree_cpu_s(server.pid)
        started = time.perf_counter()
        for path in paths:
            sent = time.perf_counter()
            sizes.append(len(_get(conn, path)))
            done = time.perf_counter()
            latencies.append((done - sent) * 1000)
            if limit_s is not None and done - started >= limit_s:
                break
        seconds = time.perf_counter() - started
        cpu = tree_cpu_s(server.pid) - cpu_before
    conn.close()
    return Pass(seconds, latencies, sizes, cpu)


def get_bodies(server: Server, paths: list[str]) -> list[bytes]:
    """Each path's answer, untimed."""
    conn = _connect(server)
    try:
        return [_get(conn, path) for path in paths]
    finally:
        conn.close()
