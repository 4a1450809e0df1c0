"""A fault-injecting HTTP reverse proxy in front of moto, for the AWS fault tests.

Point a boto3 client's `endpoint_url` at `FaultProxy.url`: every request is relayed to the
upstream (moto's server) unchanged, bodies streamed both ways, unless a `Rule` matches it;
then the proxy answers as AWS does when it throttles or fails (S3: 503 SlowDown, 500
InternalError; DynamoDB: 400 ProvisionedThroughputExceededException, 500 InternalServerError)
for the rule's first `times` matches (or every `every`-th one), and relays again afterwards.
Nothing in boto3 or botocore is patched: their retries, backoff and error parsing run as they
do against AWS.

A request's service is the one in its SigV4 credential scope (`.../us-east-1/s3/aws4_request`);
its operation is the `X-Amz-Target` of the JSON protocols (`DynamoDB_20120810.PutItem`,
`AmazonSQS.ReceiveMessage`: "PutItem", "ReceiveMessage"), or the HTTP method for S3 (whose
path, with an IP endpoint, is `/bucket/key`).
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

import httpx

_CHUNK = 64 * 1024
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "expect",  # answered here (100 Continue); httpx does not speak it
    }
)
_SCOPE = re.compile(r"Credential=[^/,]+/\d{8}/[^/,]+/([^/,]+)/aws4_request")


@dataclass(frozen=True)
class Reply:
    """An error answer in the shape one AWS service gives it."""

    status: int
    code: str
    body: bytes
    content_type: str


def s3_slow_down() -> Reply:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
        "<Message>Please reduce your request rate.</Message>"
        f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId><HostId>faultproxy</HostId>"
        "</Error>"
    )
    return Reply(503, "SlowDown", body.encode(), "application/xml")


def s3_internal_error() -> Reply:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
        "<Message>We encountered an internal error. Please try again.</Message>"
        f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId><HostId>faultproxy</HostId>"
        "</Error>"
    )
    return Reply(500, "InternalError", body.encode(), "application/xml")


def _dynamodb(status: int, code: str, message: str) -> Reply:
    body = f'{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"{message}"}}'
    return Reply(status, code, body.encode(), "application/x-amz-json-1.0")


def dynamodb_throttled() -> Reply:
    return _dynamodb(
        400,
        "ProvisionedThroughputExceededException",
        "The level of configured provisioned throughput for the table was exceeded.",
    )


def dynamodb_internal_error() -> Reply:
    return _dynamodb(500, "InternalServerError", "Internal server error")


@dataclass(frozen=True)
class Call:
    """One request as the proxy classified it."""

    service: str  # "s3", "dynamodb", "sqs", ... ("" when unsigned)
    operation: str  # "PutItem", "ReceiveMessage", or for S3 the HTTP method
    method: str
    path: str  # path and query, as sent


@dataclass
class Rule:
    """Answer `reply` to the requests this matches: the first `times` of them (None: all),
    or with `every` = k the 1st, (k+1)th, (2k+1)th... until `times` faults were given. Rules
    are tried in the order added; a match that gets no fault passes on to the next rule."""

    service: str
    reply: Reply
    operation: str | None = None
    path_contains: str | None = None
    body_contains: tuple[bytes, ...] = ()  # all of these, somewhere in the body
    times: int | None = 1
    every: int = 1
    matched: int = 0
    faulted: int = 0

    def wants(self, call: Call) -> bool:
        return (
            call.service == self.service
            and (self.operation is None or call.operation == self.operation)
            and (self.path_contains is None or self.path_contains in call.path)
        )

    @property
    def spent(self) -> bool:
        return self.times is not None and self.faulted >= self.times


@dataclass(frozen=True)
class Logged:
    call: Call
    status: int
    fault: str | None  # the error code the proxy answered, None when relayed


@dataclass
class _State:
    rules: list[Rule] = field(default_factory=list)
    log: list[Logged] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def classify(method: str, path: str, headers: dict[str, str]) -> Call:
    scope = _SCOPE.search(headers.get("authorization", ""))
    target = headers.get("x-amz-target", "")
    service = scope.group(1) if scope else ""
    operation = target.rsplit(".", 1)[-1] if target else method
    return Call(service, operation, method, path)


class FaultProxy:
    """A ThreadingHTTPServer on 127.0.0.1:0 relaying to `upstream`, with programmable faults."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self._state = _State()
        self._client = httpx.Client(timeout=60, follow_redirects=False)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"

    # -- rules and what happened ------------------------------------------------------------

    def add(self, rule: Rule) -> Rule:
        with self._state.lock:
            self._state.rules.append(rule)
        return rule

    def clear(self) -> None:
        """No rules, an empty log."""
        with self._state.lock:
            self._state.rules.clear()
            self._state.log.clear()

    def calls(
        self,
        service: str | None = None,
        operation: str | None = None,
        *,
        faulted: bool | None = None,
    ) -> list[Logged]:
        with self._state.lock:
            log = list(self._state.log)
        return [
            entry
            for entry in log
            if (service is None or entry.call.service == service)
            and (operation is None or entry.call.operation == operation)
            and (faulted is None or (entry.fault is not None) == faulted)
        ]

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="faultproxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._client.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the relay --------------------------------------------------------------------------

    def _decide(self, call: Call, body: bytes | None) -> tuple[Reply | None, bool]:
        """The fault to answer (or None), and whether a rule needs the body to tell."""
        with self._state.lock:
            for rule in self._state.rules:
                if rule.spent or not rule.wants(call):
                    continue
                if rule.body_contains:
                    if body is None:
                        return None, True
                    if not all(part in body for part in rule.body_contains):
                        continue
                rule.matched += 1
                if (rule.matched - 1) % rule.every == 0:
                    rule.faulted += 1
                    return rule.reply, False
        return None, False

    def _record(self, call: Call, status: int, fault: str | None) -> None:
        with self._state.lock:
            self._state.log.append(Logged(call, status, fault))

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet

            def do_GET(self) -> None:
                self._relay()

            do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_GET

            def _relay(self) -> None:
                try:
                    proxy._relay(self)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

        return Handler

    def _relay(self, handler: BaseHTTPRequestHandler) -> None:
        headers = {k.lower(): v for k, v in handler.headers.items()}
        call = classify(handler.command, handler.path, headers)
        body: bytes | None = None
        fault, needs_body = self._decide(call, None)
        if needs_body:
            body = b"".join(_request_body(handler, headers))
            fault, _ = self._decide(call, body)
        if fault is not None:
            if body is None:
                for _ in _request_body(handler, headers):
                    pass  # read it all, so the connection stays usable
            self._answer(handler, call, fault)
            return
        content: bytes | Iterator[bytes] | None = body
        if body is None and ("content-length" in headers or "transfer-encoding" in headers):
            content = _request_body(handler, headers)
        forwarded = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP}
        if body is not None:
            forwarded = {k: v for k, v in forwarded.items() if k.lower() != "content-length"}
            forwarded["Content-Length"] = str(len(body))
        request = self._client.build_request(
            handler.command, self.upstream + handler.path, headers=forwarded, content=content
        )
        response = self._client.send(request, stream=True)
        try:
            handler.send_response(response.status_code)
            length = response.headers.get("content-length")
            for name, value in response.headers.multi_items():
                if name.lower() not in _HOP_BY_HOP:
                    handler.send_header(name, value)
            no_body = handler.command == "HEAD" or response.status_code in (204, 304)
            chunked = length is None and not no_body
            if chunked:
                handler.send_header("Transfer-Encoding", "chunked")
            handler.end_headers()
            if not no_body:
                for chunk in response.iter_raw(_CHUNK):
                    if chunked:
                        handler.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    else:
                        handler.wfile.write(chunk)
                if chunked:
                    handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        finally:
            response.close()
        self._record(call, response.status_code, None)

    def _answer(self, handler: BaseHTTPRequestHandler, call: Call, reply: Reply) -> None:
        body = b"" if handler.command == "HEAD" else reply.body
        request_id = uuid.uuid4().hex
        handler.send_response(reply.status)
        handler.send_header("Content-Type", reply.content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("x-amz-request-id", request_id)
        handler.send_header("x-amzn-RequestId", request_id)
        handler.end_headers()
        handler.wfile.write(body)
        handler.wfile.flush()
        self._record(call, reply.status, reply.code)


def _request_body(handler: BaseHTTPRequestHandler, headers: dict[str, str]) -> Iterator[bytes]:
    """The request body, read from the socket piece by piece (chunked or sized)."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = handler.rfile.readline()
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return
            remaining = size
            while remaining:
                piece = handler.rfile.read(min(remaining, _CHUNK))
                if not piece:
                    return
                remaining -= len(piece)
                yield piece
            handler.rfile.readline()  # the CRLF after a chunk
        return
    remaining = int(headers.get("content-length", "0") or 0)
    while remaining > 0:
        piece = handler.rfile.read(min(remaining, _CHUNK))
        if not piece:
            return
        remaining -= len(piece)
        yield piece
