"""An original held open by the local store (`OpenFile`): read by whichever process renders it.

A rendering process gets its own copy of the descriptor (over its socket, SCM_RIGHTS) and reads
the file itself, so the original's bytes are never copied into the server process or through
the socket. It imports only `os` and `typing`, which a rendering process loads anyway (it imports
this module).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from types import TracebackType
    from typing import BinaryIO

HASH_CHUNK = 256 * 1024  # stays in the CPU cache between reads
SPOOL_BYTES = 4 * 1024 * 1024  # a memory_spool() moves to a temporary file past this size


class OpenFile:
    """A regular file open for reading, and its size when it was opened: the bytes read are at
    most that many, whatever is appended later. `digest`: its sha256 (hex), when the opener
    already knows it for this very file (the local store, for a file it wrote: its ETag).
    Closing is the opener's job (a context manager)."""

    __slots__ = ("digest", "fd", "size")

    def __init__(self, fd: int, size: int, digest: str | None = None) -> None:
        self.fd = fd
        self.size = size
        self.digest = digest

    def read(self) -> bytes:
        return read_at_most(self.fd, self.size)

    def sha256(self) -> str:
        """The hex sha256 of its first `size` bytes: `digest` if known, else read."""
        return self.digest if self.digest is not None else sha256_of(self.fd, self.size)

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> OpenFile:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def memory_spool() -> BinaryIO:
    """A spool (ObjectStore.spool) for a store with no files of its own: in memory up to
    SPOOL_BYTES, then a temporary file."""
    import tempfile  # here: a rendering process never spools

    return cast("BinaryIO", tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES))


def sha256_of(fd: int, size: int) -> str:
    """The hex sha256 of the first `size` bytes of the file `fd`, read (pread) through one small
    buffer: the file is never copied whole into this process. Not mmap: a file cut short in
    place while mapped (`cp` over it in the data folder) kills the process with SIGBUS."""
    import hashlib  # here: a rendering process never hashes (see engine.pipeline.render_unhashed)

    digest = hashlib.sha256()
    view = memoryview(bytearray(min(size, HASH_CHUNK)))
    offset = 0
    while offset < size:
        got = os.preadv(fd, [view[: size - offset]], offset)
        if got == 0:
            break
        digest.update(view[:got])
        offset += got
    return digest.hexdigest()


def read_at_most(fd: int, size: int) -> bytes:
    """Up to `size` bytes from the start of the file `fd` (pread: the shared offset is untouched,
    since a descriptor passed to another process shares it). One read into one buffer, unless
    the file was cut short or the kernel returns less."""
    data = os.pread(fd, size, 0)
    if len(data) == size or not data:
        return data
    parts = [data]
    offset = len(data)
    while offset < size and (part := os.pread(fd, size - offset, offset)):
        parts.append(part)
        offset += len(part)
    return b"".join(parts)
