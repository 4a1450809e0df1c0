"""The HTTP edge of `imgpipe serve`: uvicorn's httptools protocol with the limits a hostile
client must not get past (header size and count, a deadline for the headers, open connections).

uvicorn's httptools protocol reads a request's headers with no size limit (httptools joins a
header's pieces until its end comes, however long), and times a connection out only once it has
answered a request, so a connection that never sends one stays open for good. `EdgeProtocol`
adds what is missing and leaves the rest to uvicorn: it counts a request's head as it arrives
(431 past the limits), gives a connection `header_timeout_s` to finish its headers (408, or a
plain close if nothing came), and keeps the open connections at `max_connections` by closing
the idle connection that has waited longest (or, with none idle, the new one, with a 503).
Between requests uvicorn's own keep-alive timeout (`timeout_keep_alive`) closes idle ones.

What it relies on in uvicorn, all exercised by tests/unit/test_edge_protocol.py: the parser
callbacks (`on_message_begin`, `on_url`, `on_header`, `on_headers_complete`,
`on_message_complete`), `on_response_complete` after each answer, `send_400_response` for a
parser error (an exception raised in a callback is one), `cycle` and `pipeline` (the request
being answered and those waiting), and `server_state.connections`, the set of open protocols.
"""

from __future__ import annotations

import json
import logging
import resource
from asyncio import TimerHandle, Transport
from typing import Any, ClassVar, NamedTuple

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

log = logging.getLogger("imgpipe.edge")

# After refusing a request the connection reads and drops what the client still sends, for a
# while, before closing: closing a socket with unread input resets the connection, and a reset
# can destroy the answer before the client reads it.
LINGER_S = 2.0
LINGER_BYTES = 1024 * 1024


class EdgeLimits(NamedTuple):
    max_header_bytes: int
    max_headers: int
    header_timeout_s: float
    max_connections: int


class _Refused(Exception):
    """Raised in a parser callback to stop parsing; uvicorn turns it into send_400_response."""


def connection_cap(configured: int) -> int:
    """`configured`, but at most 3/8 of the process's open-file limit (384 of 1024): a quarter
    of the limit is left to the rest (SQLite's files in each thread that uses it, the rendering
    processes' pipes, logs), and each connection may hold two descriptors, its socket and the
    file of an upload being written."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(1, min(configured, soft * 3 // 8))


def edge_protocol(limits: EdgeLimits) -> type[EdgeProtocol]:
    """The protocol class to pass as `uvicorn.Config(http=...)`, with these limits."""

    class BoundEdgeProtocol(EdgeProtocol):
        pass

    BoundEdgeProtocol.limits = limits
    return BoundEdgeProtocol


class EdgeProtocol(HttpToolsProtocol):
    limits: ClassVar[EdgeLimits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_head = True  # waiting for a request, or inside its head
        self._began = False  # the head being read has begun
        self._head_bytes = 0  # of the head being read, counted as chunks arrive
        self._parsed_bytes = 0  # of its request line and fields parsed so far
        self._fields = 0
        self._completed = 0  # requests read whole, body and all
        self._idle_since = 0.0
        self._deadline: TimerHandle | None = None
        self._refusal: tuple[int, str, str] | None = None
        self._refused = False  # answered at the edge: draining, then closing
        self._drained = 0
        self._linger: TimerHandle | None = None

    # -- the connection ---------------------------------------------------------------------

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._idle_since = self.loop.time()
        self._arm()
        if len(self.connections) > self.limits.max_connections and not self._evict_idle():
            self._refuse(
                503,
                "too_many_connections",
                f"the server has {self.limits.max_connections} connections open; retry soon",
                b"retry-after: 1\r\n",
            )

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._linger is not None:
            self._linger.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            self._drained += len(data)
            if self._drained > LINGER_BYTES:
                self.transport.close()
            return
        was_reading_head, completed = self._reading_head, self._completed
        super().data_received(data)
        if self._refused or not self._reading_head or self.transport.is_closing():
            return
        if was_reading_head and completed == self._completed:
            # The whole chunk is head. Where a head begins inside a chunk (after the request
            # before it), on_url and on_header count it, and its deadline starts with the next.
            self._arm()
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse(*self._too_large())

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._idle_since = self.loop.time()

    def send_400_response(self, msg: str) -> None:
        if self._refusal is not None:
            self._refuse(*self._refusal)
        else:
            super().send_400_response(msg)

    # -- the parser's callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._began = True

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        if self._fields > self.limits.max_headers:
            self._refusal = (
                431,
                "too_many_headers",
                f"more than {self.limits.max_headers} header fields",
            )
            raise _Refused
        self._count(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        self._reading_head = self._began = False
        self._head_bytes = self._parsed_bytes = self._fields = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_head = True
        self._completed += 1

    def _count(self, size: int) -> None:
        self._parsed_bytes += size
        if self._parsed_bytes > self.limits.max_header_bytes:
            self._refusal = self._too_large()
            raise _Refused

    def _too_large(self) -> tuple[int, str, str]:
        limit = self.limits.max_header_bytes
        return 431, "headers_too_large", f"the request line and headers exceed {limit} bytes"

    # -- timers, capacity, refusals ---------------------------------------------------------

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(
                self.limits.header_timeout_s, self._header_timeout
            )

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _header_timeout(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self._refused or self._answering():
            return  # uvicorn's keep-alive timeout takes over once the answer is out
        if self._began:
            timeout = self.limits.header_timeout_s
            self._refuse(408, "request_timeout", f"the headers took longer than {timeout:g} s")
        else:
            self.transport.close()

    def _answering(self) -> bool:
        return bool(self.pipeline) or (self.cycle is not None and not self.cycle.response_complete)

    def _idle(self) -> bool:
        return (
            self._reading_head
            and not self._refused
            and not self._answering()
            and not self.transport.is_closing()
        )

    def _evict_idle(self) -> bool:
        """Close the connection that has waited longest for a request, if any waits."""
        idle = [c for c in self.connections if isinstance(c, EdgeProtocol) and c._idle()]
        idle = [c for c in idle if c is not self]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c._idle_since)
        log.info("closed an idle connection to admit a new one", extra={"peer": oldest.client})
        oldest.transport.close()
        return True

    def _refuse(self, status: int, code: str, message: str, extra: bytes = b"") -> None:
        """Answer with SPEC's JSON error and close: at once if a request is being answered on
        this connection (the answers must not mix), else after draining what still comes."""
        self._disarm()
        self._refused = True
        log.info("refused at the edge", extra={"status": status, "peer": self.client})
        if self._answering():
            self.transport.close()
            return
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        head = b"".join(b"%s: %s\r\n" % pair for pair in self.server_state.default_headers)
        head += b"content-type: application/json\r\nconnection: close\r\n"
        self.transport.write(
            STATUS_LINE[status] + head + extra + b"content-length: %d\r\n\r\n" % len(body) + body
        )
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._linger = self.loop.call_later(LINGER_S, self.transport.close)
