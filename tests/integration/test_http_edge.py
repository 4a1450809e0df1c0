"""The HTTP edge of a real `imgpipe serve` (entrypoints/http_edge.py and the body limit in
entrypoints/api.py), driven over raw sockets as a hostile client would: oversized and endless
headers, connections that never send a request, bodies sent to the wrong token, descriptors
run short, and X-Forwarded-For from a client that is not a proxy.

The header tests run twice, over uvloop and over asyncio (uvloop hidden from the server), since
uvicorn falls back to asyncio where uvloop is missing. Timeouts are set small in the servers'
settings; the ones here are hang guards.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import resource
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import imagegen
from liveserver import Server, start_server, stop, upload_multipart, wait_terminal

TOKEN = "edge-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HANG_GUARD_S = 15


def address(server: Server) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def connect(server: Server) -> socket.socket:
    sock = socket.create_connection(address(server), timeout=HANG_GUARD_S)
    sock.settimeout(HANG_GUARD_S)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP response off the socket: status, headers (lower-case names), body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed inside the body"
        body += chunk
    return int(lines[0].split()[1]), headers, body[:length]


def error_code(body: bytes) -> str:
    code: str = json.loads(body)["error"]["code"]
    return code


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed the connection (EOF or a reset)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def loaded_uvloop(server: Server) -> bool:
    return "uvloop" in Path(f"/proc/{server.process.pid}/maps").read_text()


@pytest.fixture(scope="module", params=["uvloop", "asyncio"])
def edge(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server with a token and one-second header and idle timeouts; over asyncio, uvloop is
    hidden from it (an import of it fails, as where it is not installed)."""
    tmp = tmp_path_factory.mktemp(f"edge-{request.param}")
    env = {
        "IMGPIPE_SERVER__API_TOKEN": TOKEN,
        "IMGPIPE_SERVER__HEADER_TIMEOUT_S": "1",
        "IMGPIPE_SERVER__IDLE_TIMEOUT_S": "1",
    }
    if request.param == "asyncio":
        shim = tmp / "no-uvloop" / "uvloop"
        shim.mkdir(parents=True)
        (shim / "__init__.py").write_text("raise ImportError('uvloop hidden by the test')\n")
        env["PYTHONPATH"] = os.pathsep.join([str(shim.parent), os.environ.get("PYTHONPATH", "")])
    server = start_server(tmp / "data", tmp / "serve.log", env=env)
    try:
        assert loaded_uvloop(server) == (request.param == "uvloop")
        yield server
    finally:
        stop(server)


# -- request headers --------------------------------------------------------------------------


def test_a_header_without_end_gets_431_and_is_not_read_whole(edge: Server) -> None:
    # GIVEN a client sending one header that never ends, a bit over the 16 KiB limit so far
    sock = connect(edge)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000)
    # WHEN others use the server meanwhile THEN they are answered
    assert httpx.get(f"{edge.url}/health", timeout=HANG_GUARD_S).status_code == 200
    # AND the client, sending on, is cut off long before 64 MB
    sent = 0
    with contextlib.suppress(OSError):
        while sent < 64 * 1024 * 1024:
            sock.sendall(b"a" * 65536)
            sent += 65536
    assert sent < 64 * 1024 * 1024, "the server read a 64 MB header"
    # AND its answer is a 431 with SPEC's error body
    status, headers, body = read_response(sock)
    assert (status, error_code(body)) == (431, "headers_too_large")
    assert headers["content-type"] == "application/json"
    sock.close()


def test_too_many_header_fields_get_431(edge: Server) -> None:
    sock = connect(edge)
    fields = b"".join(b"X-Field-%d: 1\r\n" % n for n in range(101))
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    status, _, body = read_response(sock)
    assert (status, error_code(body)) == (431, "too_many_headers")
    assert closed_by_server(sock)
    sock.close()


def test_a_hundred_header_fields_are_answered(edge: Server) -> None:
    sock = connect(edge)
    fields = b"".join(b"X-Field-%d: 1\r\n" % n for n in range(99))
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    assert read_response(sock)[0] == 200
    sock.close()


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(
    edge: Server,
) -> None:
    sock = connect(edge)
    assert closed_by_server(sock)  # within the 1 s header timeout (the socket's is 15 s)
    sock.close()


def test_headers_that_stall_after_a_request_get_408(edge: Server) -> None:
    # GIVEN a keep-alive connection that has had one answer
    sock = connect(edge)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(sock)[0] == 200
    # WHEN its next request's headers stop half-way
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    # THEN, past the header timeout, it is answered 408 and closed
    status, _, body = read_response(sock)
    assert (status, error_code(body)) == (408, "request_timeout")
    assert closed_by_server(sock)
    sock.close()


# -- request bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/uploads", "/process-image"])
def test_a_json_body_over_the_cap_gets_413_before_it_is_sent(edge: Server, path: str) -> None:
    sock = connect(edge)
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Content-Type: application/json\r\nContent-Length: 200000000\r\n\r\n".encode()
    )
    status, _, body = read_response(sock)  # not one byte of the body sent
    assert (status, error_code(body)) == (413, "too_large")
    sock.close()


@pytest.mark.parametrize("path", ["/uploads", "/process-image"])
def test_a_wrong_token_gets_401_before_the_json_body_is_read(edge: Server, path: str) -> None:
    # GIVEN a JSON body under the cap, announced but not sent, with a wrong token
    sock = connect(edge)
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n"
        "Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n".encode()
    )
    # THEN the answer is a 401 all the same
    status, _, body = read_response(sock)
    assert (status, error_code(body)) == (401, "unauthorized")
    sock.close()


def test_json_routes_still_read_their_bodies_with_the_right_token(edge: Server) -> None:
    with httpx.Client(base_url=edge.url, headers=AUTH, timeout=HANG_GUARD_S) as client:
        ticket = client.post("/uploads", json={"filename": "a.jpg", "contentType": "image/jpeg"})
        assert ticket.status_code == 201, ticket.text
        missing = client.post("/process-image", json={"key": "uploads/none/a.jpg"})
        assert missing.status_code == 404, missing.text
        wrong = client.post("/uploads", json={"filename": "a.jpg"}, headers={"Authorization": ""})
        assert wrong.status_code == 401


# -- X-Forwarded-For --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A tight rate limit (5 at once, then one request per 10 s), 127.0.0.2 a trusted proxy."""
    tmp = tmp_path_factory.mktemp("limited")
    env = {
        "IMGPIPE_SERVER__RATE_LIMIT_PER_S": "0.1",
        "IMGPIPE_SERVER__RATE_LIMIT_BURST": "5",
        "IMGPIPE_SERVER__TRUSTED_PROXIES": '["127.0.0.2"]',
    }
    server = start_server(tmp / "data", tmp / "serve.log", env=env)
    yield server
    stop(server)


def statuses(server: Server, local_address: str, forwarded_for: list[str]) -> list[int]:
    transport = httpx.HTTPTransport(local_address=local_address)
    with httpx.Client(base_url=server.url, transport=transport, timeout=HANG_GUARD_S) as client:
        return [
            client.get("/images", headers={"X-Forwarded-For": xff}).status_code
            for xff in forwarded_for
        ]


def random_addresses(n: int) -> list[str]:
    return [f"10.{random.randrange(256)}.{random.randrange(256)}.{n}" for n in range(n)]


def test_x_forwarded_for_from_a_client_that_is_no_proxy_is_ignored(limited: Server) -> None:
    # GIVEN a local client (not a trusted proxy) naming a new address in every request
    got = statuses(limited, "127.0.0.1", random_addresses(20))
    # THEN the rate limit counts them as the one client they are
    assert got[:5] == [200] * 5
    assert got.count(429) >= 10, got


def test_x_forwarded_for_from_a_trusted_proxy_names_the_client(limited: Server) -> None:
    # GIVEN requests through the trusted proxy (127.0.0.2) on behalf of 20 clients
    assert statuses(limited, "127.0.0.2", random_addresses(20)) == [200] * 20
    # AND one client, through the same proxy, sending too many
    got = statuses(limited, "127.0.0.2", ["203.0.113.9"] * 20)
    assert got[:5] == [200] * 5
    assert got.count(429) >= 10, got


# -- connections ------------------------------------------------------------------------------


def _low_descriptor_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def test_idle_connections_beyond_the_descriptors_do_not_shut_the_server_out(
    tmp_path: Path,
) -> None:
    # GIVEN a server with 256 descriptors and a long header timeout (eviction, not the
    # timeout, is what this test is about)
    env = {"IMGPIPE_SERVER__HEADER_TIMEOUT_S": "120"}
    server = start_server(
        tmp_path / "data", tmp_path / "serve.log", env=env, preexec_fn=_low_descriptor_limit
    )
    idle: list[socket.socket] = []
    try:
        # WHEN 300 connections are opened and left idle
        idle = [connect(server) for _ in range(300)]
        # THEN the server still answers and takes, processes and serves an upload
        with server.client() as client:
            assert client.get("/health").status_code == 200
            image_id = upload_multipart(
                client, "a.jpg", imagegen.photo_jpeg(320, 240), "image/jpeg"
            )
            record: dict[str, Any] = wait_terminal(client, [image_id])[image_id]
            assert record["status"] == "PROCESSED", record
            assert client.get(record["renditions"][0]["url"]).status_code == 200
    finally:
        for sock in idle:
            sock.close()
        stop(server)
    assert "Too many open files" not in server.log.read_text()
