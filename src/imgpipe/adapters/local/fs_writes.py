"""The local store's file writes: the upload spool, fsync of a folder, a full disk, leftovers.

Every write goes to a temporary file in the store's `.imgpipe/tmp` first and is renamed into
place once whole and fsynced (the derived cache's results are not fsynced: see
core.complete), so a reader never sees half an object; what a crash left in
`tmp` is removed, once a day old, when a store next opens the folder.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from imgpipe.core.errors import StoreUnavailableError

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

STALE_TMP_S = 24 * 3600
_COPY_CHUNK = 1024 * 1024
# No room for the object now (disk full, quota, file size limit): a retry may succeed.
_NO_ROOM = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


@contextlib.contextmanager
def no_room_is_transient(what: str) -> Iterator[None]:
    """A write that found no room (ENOSPC, EFBIG, EDQUOT) raises StoreUnavailableError."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _NO_ROOM:
            raise StoreUnavailableError(
                f"cannot store {what}: the disk is full, or a quota or file size limit was "
                f"reached ({exc.strerror})"
            ) from exc
        raise


class Spool(io.FileIO):
    """FilesystemObjectStore.spool(): a file in the store's tmp folder, hashed (sha256) as it
    is written, that put() moves into place instead of copying. Closing removes it, unless
    put() moved it. Written in order only (the hash is of what was written, as written).
    `store` is the store that made it: only its put() may move it."""

    def __init__(self, fd: int, path: Path, store: object) -> None:
        super().__init__(fd, "r+")
        self.path = path
        self.store = store
        self.moved = False
        self.length = 0
        self._digest = hashlib.sha256()

    def write(self, data: ReadableBuffer) -> int:
        view = memoryview(data).cast("B")
        if self.moved or self.tell() != self.length:
            raise io.UnsupportedOperation("a spool is written in order, before put()")
        with no_room_is_transient("the upload"):
            done = 0
            while done < len(view):
                done += super().write(view[done:]) or 0
        self._digest.update(view)
        self.length += len(view)
        return len(view)

    def sha256(self) -> str:
        return self._digest.hexdigest()

    def close(self) -> None:
        if self.closed:
            return
        try:
            super().close()
        finally:
            if not self.moved:
                self.path.unlink(missing_ok=True)


def write_temp(tmp_dir: Path, body: bytes | BinaryIO, *, durable: bool) -> tuple[Path, str]:
    """`body` in a new file in `tmp_dir`, fsynced where `durable`: its path and sha256 (hex).
    The caller renames it into place, or removes it."""
    fd, name = tempfile.mkstemp(prefix="put-", dir=tmp_dir)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            if isinstance(body, bytes | bytearray | memoryview):
                digest.update(body)
                out.write(body)
            else:
                while chunk := body.read(_COPY_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            out.flush()
            if durable:
                os.fsync(out.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name), digest.hexdigest()


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_tmp(tmp_dir: Path) -> None:
    """Remove temporary files older than a day: what a crash left mid-write."""
    cutoff = time.time() - STALE_TMP_S
    for entry in os.scandir(tmp_dir):
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
