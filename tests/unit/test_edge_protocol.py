"""EdgeProtocol (entrypoints/http_edge.py) over an in-memory transport: what it writes back for
each way a client misbehaves, and that it relies only on uvicorn hooks that still work (each
test fails if uvicorn stops calling one: see the module's docstring for the list)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from imgpipe.entrypoints.http_edge import EdgeLimits, EdgeProtocol, edge_protocol

LIMITS = EdgeLimits(max_header_bytes=4096, max_headers=10, header_timeout_s=0.05, max_connections=2)


class MemoryTransport(asyncio.Transport):
    """Collects what the protocol writes; closing it tells the protocol, as a socket's does."""

    def __init__(self, loop: asyncio.AbstractEventLoop, port: int) -> None:
        super().__init__()
        self.loop = loop
        self.port = port
        self.written = bytearray()
        self.closed = self.eof = False
        self.protocol: EdgeProtocol | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.eof, "written after write_eof"
        self.written += data

    def close(self) -> None:
        if not self.closed and self.protocol is not None:
            self.loop.call_soon(self.protocol.connection_lost, None)
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", self.port), "sockname": ("127.0.0.1", 8080)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def status(self) -> int | None:
        """The status of the first response written, if any."""
        return int(self.written.split()[1]) if self.written else None

    def error_code(self) -> str:
        code: str = json.loads(bytes(self.written).partition(b"\r\n\r\n")[2])["error"]["code"]
        return code


async def no_content(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An app that reads the whole body and answers 204."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def connect(loop: asyncio.AbstractEventLoop) -> Iterator[Any]:
    config = uvicorn.Config(no_content, http=edge_protocol(LIMITS), proxy_headers=False)
    config.load()
    state = ServerState()
    made: list[MemoryTransport] = []

    def connect() -> MemoryTransport:
        transport = MemoryTransport(loop, 40000 + len(made))
        protocol = config.http_protocol_class(  # type: ignore[call-arg]
            config=config, server_state=state, app_state={}, _loop=loop
        )
        transport.protocol = protocol
        protocol.connection_made(transport)
        made.append(transport)
        return transport

    yield connect
    for transport in made:
        transport.close()
    settle(loop)


def settle(loop: asyncio.AbstractEventLoop, seconds: float = 0.01) -> None:
    loop.run_until_complete(asyncio.sleep(seconds))


def test_a_head_over_the_limit_across_chunks_is_answered_431(connect: Any) -> None:
    transport = connect()
    transport.protocol.data_received(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 3000)
    assert transport.status() is None
    transport.protocol.data_received(b"a" * 3000)
    assert (transport.status(), transport.error_code()) == (431, "headers_too_large")
    assert transport.eof and not transport.closed  # half-closed: what the client sends is read


def test_a_refusal_raised_inside_a_parser_callback_is_answered(connect: Any) -> None:
    # on_header raises; uvicorn must turn that into send_400_response for the 431 to be sent
    transport = connect()
    fields = b"".join(b"X-%d: 1\r\n" % n for n in range(11))
    transport.protocol.data_received(b"GET / HTTP/1.1\r\n" + fields + b"\r\n")
    assert (transport.status(), transport.error_code()) == (431, "too_many_headers")


def test_a_body_before_the_next_requests_head_is_not_counted_as_head(
    connect: Any, loop: asyncio.AbstractEventLoop
) -> None:
    # GIVEN a body larger than the head limit, in the same chunk as the start of the next head
    transport = connect()
    body = b"x" * 10_000
    first = b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body)
    transport.protocol.data_received(first + body + b"GET / HTTP/1.1\r\nHo")
    transport.protocol.data_received(b"st: x\r\n\r\n")
    settle(loop)
    # THEN both requests are answered
    assert bytes(transport.written).count(b"HTTP/1.1 204 ") == 2, transport.written


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(
    connect: Any, loop: asyncio.AbstractEventLoop
) -> None:
    transport = connect()
    settle(loop, LIMITS.header_timeout_s * 4)
    assert transport.closed and not transport.written


def test_a_head_that_stalls_is_answered_408(connect: Any, loop: asyncio.AbstractEventLoop) -> None:
    transport = connect()
    transport.protocol.data_received(b"GET / HTTP/1.1\r\n")
    settle(loop, LIMITS.header_timeout_s * 4)
    assert (transport.status(), transport.error_code()) == (408, "request_timeout")


def test_past_the_cap_the_longest_idle_connection_is_closed(
    connect: Any, loop: asyncio.AbstractEventLoop
) -> None:
    oldest, newer = connect(), connect()
    newest = connect()
    assert oldest.closed and not newer.closed and not newest.closed
    assert not newest.written


def test_past_the_cap_with_none_idle_the_new_connection_gets_503(connect: Any) -> None:
    # GIVEN two connections, each with a request whose body is still coming
    busy = [connect(), connect()]
    for transport in busy:
        transport.protocol.data_received(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n")
    # WHEN a third connects THEN it is told to come back later
    newest = connect()
    assert (newest.status(), newest.error_code()) == (503, "too_many_connections")
    assert b"retry-after: 1" in newest.written
    assert not any(transport.closed for transport in busy)
