"""`POST /images`' multipart body, read as it arrives: the `file` part's bytes go straight into
the store's spool (ObjectStore.spool: locally, a file beside the objects that put() moves into
place), the other parts are read and dropped.

Why not FastAPI's `UploadFile`: Starlette's parser holds a file in memory up to its spool size
and past that writes it to a temporary file through a thread-pool hop per chunk, for the store
to read it back and copy it once more. Most photos are past any sensible in-memory size (7 of
the 24 in the benchmark's corpus are over 4 MB, 80% of its bytes), and those copies were the
largest share of the server's CPU per upload after the page cache (docs/benchmarks.md).
"""

from __future__ import annotations

import codecs
import re
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import unquote_to_bytes

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from imgpipe.core.errors import InvalidRequestError, PayloadTooLargeError

if TYPE_CHECKING:
    from typing import BinaryIO

FIELD = "file"
# A part's header line may carry a long file name (shortened later, as for POST /uploads):
# python-multipart's default of 4 KB refused a 5,000-character one.
MAX_PART_HEADER_BYTES = 16 * 1024
# RFC 8187's `filename*=charset'language'percent-encoded`, which python-multipart drops
_EXTENDED_FILENAME = re.compile(rb';\s*filename\*\s*=\s*"?([^";]*)', re.IGNORECASE)

# The request body's schema, for the OpenAPI document (FastAPI no longer sees a File() param).
OPENAPI_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FIELD],
                    "properties": {
                        FIELD: {"type": "string", "format": "binary", "description": "the image"}
                    },
                }
            }
        },
    }
}


class FilePart(NamedTuple):
    filename: str
    content_type: str | None


def _decode(value: bytes, charset: str) -> str:
    try:
        return value.decode(charset)
    except (UnicodeDecodeError, LookupError):
        return value.decode("latin-1")


def _extended_filename(disposition: bytes) -> str | None:
    """The `filename*` of a Content-Disposition, decoded; None if there is none. RFC 7578 tells
    senders not to use it, yet some do, some with no plain `filename` at all; where both are
    there it is the one to believe, as RFC 6266 says of HTTP's own Content-Disposition."""
    match = _EXTENDED_FILENAME.search(disposition)
    if match is None:
        return None
    charset, _, rest = match.group(1).decode("latin-1").partition("'")
    _language, quote, encoded = rest.partition("'")
    if not quote:
        return None
    return _decode(unquote_to_bytes(encoded), charset.strip() or "utf-8")


class _Reader:
    """python-multipart's callbacks: the first file part named FIELD into `sink`, at most
    `cap` bytes of it; everything else dropped."""

    def __init__(self, sink: BinaryIO, cap: int, charset: str) -> None:
        self.sink = sink
        self.cap = cap
        self.charset = charset
        self.found: FilePart | None = None
        self.size = 0
        self.ended = False  # the closing boundary was read
        self._writing = False
        self._name = b""
        self._value = b""
        self._headers: dict[bytes, bytes] = {}

    def on_part_begin(self) -> None:
        self._headers = {}
        self._writing = False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._name.lower()] = self._value
        self._name = self._value = b""

    def on_headers_finished(self) -> None:
        disposition = self._headers.get(b"content-disposition", b"")
        _, options = parse_options_header(disposition)
        if b"name" not in options:
            raise InvalidRequestError('every part needs a Content-Disposition with a "name"')
        if _decode(options[b"name"], self.charset) != FIELD:
            return  # another field: read and dropped
        filename = _extended_filename(disposition)
        if filename is None and b"filename" in options:
            filename = _decode(options[b"filename"], self.charset)
        if filename is None:
            raise InvalidRequestError(f"{FIELD}: expected a file, not a plain form field")
        if self.found is not None:
            raise InvalidRequestError(f"one {FIELD!r} per upload")
        kind = self._headers.get(b"content-type")
        self.found = FilePart(filename, _decode(kind, self.charset) if kind is not None else None)
        self._writing = True

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._writing:
            return
        self.size += end - start
        if self.size > self.cap:
            raise PayloadTooLargeError(f"the file is larger than {self.cap} bytes")
        self.sink.write(memoryview(data)[start:end])

    def on_part_end(self) -> None:
        self._writing = False

    def on_end(self) -> None:
        self.ended = True


async def receive_file(request: Request, sink: BinaryIO, cap: int) -> FilePart:
    """Read the request's multipart body into `sink` (the file part named FIELD, at most `cap`
    bytes), as it arrives; InvalidRequestError (400) or PayloadTooLargeError (413) if it is
    not one. The writes run on the calling (event loop) thread: into the page cache, or into
    memory for a store with no files of its own, as Starlette's in-memory spool does."""
    kind, params = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data":
        raise InvalidRequestError(f"{FIELD}: Field required (send multipart/form-data)")
    if b"boundary" not in params:
        raise InvalidRequestError("Missing boundary in multipart.")
    charset = _decode(params.get(b"charset", b"utf-8"), "latin-1")
    try:
        charset = codecs.lookup(charset).name
    except LookupError:
        charset = "latin-1"
    reader = _Reader(sink, cap, charset)
    callbacks = {
        "on_part_begin": reader.on_part_begin,
        "on_part_data": reader.on_part_data,
        "on_part_end": reader.on_part_end,
        "on_header_field": reader.on_header_field,
        "on_header_value": reader.on_header_value,
        "on_header_end": reader.on_header_end,
        "on_headers_finished": reader.on_headers_finished,
        "on_end": reader.on_end,
    }
    try:
        parser = MultipartParser(
            params[b"boundary"],
            callbacks,  # type: ignore[arg-type]
            max_header_size=MAX_PART_HEADER_BYTES,
        )
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except ClientDisconnect as exc:
        # a real disconnect, or BodyLimitMiddleware cut the body off (it answers 413)
        raise InvalidRequestError("the upload was cut off") from exc
    except FormParserError as exc:
        raise InvalidRequestError(f"Invalid multipart data: {exc}") from exc
    if reader.found is None:
        raise InvalidRequestError(f"{FIELD}: Field required")
    if not reader.ended:  # a body cut short: never store the part of a file that came
        raise InvalidRequestError("the multipart body ends before its closing boundary")
    return reader.found
