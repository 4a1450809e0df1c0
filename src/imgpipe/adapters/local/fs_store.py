"""The local object store: objects are files under a data folder, keys map to paths safely.

Layout: `root/uploads/...`, `root/renditions/...` hold the objects; `root/.imgpipe/` holds
internal state (`tmp/` for atomic writes, the SQLite database) and is never reachable by a key.
How a key becomes a path, and back, is fs_paths.py; the spool and the writes' mechanics are
fs_writes.py.

Where S3 holds both `a/b` and `a/b/c`, a filesystem cannot: `put` raises KeyConflictError.

An object's ETag is the sha256 of its bytes (hex), not S3's MD5: an S3 ETag is an MD5 only for
some uploads (not under SSE-KMS, as the template's bucket is, nor multipart), so no client can
rely on MD5 anyway. sha256 is the faster of the two here (the CPU's SHA extensions: 1.8 against
4.2 ms for a 3 MB photo) and it is the record's content hash, so the render of a file this
store wrote or has already hashed needs no second pass over it (`open` hands it over).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from imgpipe.adapters.local.fs_paths import (
    STATE_DIR,
    UnmappablePathError,
    guess_content_type,
    key_from_parts,
    relative_parts,
    resolves_inside,
    segment_names,
    walk_files,
)
from imgpipe.adapters.local.fs_writes import (
    Spool,
    fsync_dir,
    no_room_is_transient,
    remove_stale_tmp,
    write_temp,
)
from imgpipe.core.errors import (
    InvalidRequestError,
    KeyConflictError,
    ObjectNotFoundError,
    UploadExistsError,
)
from imgpipe.core.files import OpenFile, sha256_of
from imgpipe.core.model import ObjectInfo, iso

_ETAG_CACHE_SIZE = 65_536
# How many of its own writes the store remembers for the uploads watcher (`wrote`): far more
# than can land in the watcher's debounce window.
_WRITTEN_REMEMBERED = 4096
_LOCK_STRIPES = 64
_REPLACE_ATTEMPTS = 5


def _version(mtime_ns: int) -> str:
    return format(mtime_ns, "x")


def _last_modified(mtime_ns: int) -> str:
    return iso(datetime.fromtimestamp(mtime_ns / 1e9, UTC))


class FilesystemObjectStore:
    """ObjectStore over a local folder; writes are atomic (temp file, fsync, rename)."""

    def __init__(self, root: Path, bucket: str = "local") -> None:
        self.bucket = bucket
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        self.state_dir = self.root / STATE_DIR
        self._root, self._state = str(self.root), str(self.state_dir)  # for _inside
        self.tmp_dir = self.state_dir / "tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._locks = [threading.Lock() for _ in range(_LOCK_STRIPES)]
        self._etags: OrderedDict[str, tuple[int, int, int, int, str]] = OrderedDict()
        self._etags_lock = threading.Lock()
        self._written: OrderedDict[str, str] = OrderedDict()  # key -> version, put() here
        remove_stale_tmp(self.tmp_dir)

    # -- key <-> path ---------------------------------------------------------------------

    def path_for(self, key: str) -> Path:
        """The file of `key`, strictly inside the data folder; InvalidRequestError if invalid."""
        return self.root.joinpath(*relative_parts(key))

    def key_for(self, path: Path | str) -> str:
        """The key stored at `path` (a relative path is taken from the working directory).

        Raises UnmappablePathError (an InvalidRequestError and a ValueError) for a path outside
        the data folder, inside `.imgpipe/`, or with a name no key maps to."""
        path = Path(path).absolute()
        try:
            rel = path.relative_to(self.root)
        except ValueError:
            try:
                rel = path.parent.resolve().joinpath(path.name).relative_to(self.root)
            except ValueError:
                raise UnmappablePathError(
                    f"{str(path)!r} is not inside the data folder {str(self.root)!r}"
                ) from None
        parts = rel.parts
        if not parts or parts[0] == STATE_DIR:
            raise UnmappablePathError(f"{str(path)!r} is not an object in {str(self.root)!r}")
        return key_from_parts(parts)

    def _inside(self, path: Path, *, folder: bool = False) -> bool:
        """True when `path`, symbolic links followed, stays in the data folder, off state
        (`folder`: the data folder itself counts as inside)."""
        return resolves_inside(os.fspath(path), self._root, self._state, folder=folder)

    # -- ObjectStore ----------------------------------------------------------------------

    def head(self, key: str) -> ObjectInfo | None:
        path = self.path_for(key)
        try:
            with self._open_for_read(key, path) as fd:
                return self._info(key, path, fd, os.fstat(fd))
        except ObjectNotFoundError:
            return None

    def get(self, key: str, version_id: str | None = None) -> bytes:
        with self.open(key, version_id) as found:
            return found.read()

    def open(self, key: str, version_id: str | None = None) -> OpenFile:
        """The object open for reading (the caller closes it): a rendering process reads it
        through its own copy of the descriptor, so the server never holds its bytes."""
        path = self.path_for(key)
        with self._open_for_read(key, path) as fd:
            st = os.fstat(fd)
            if version_id is not None and version_id != _version(st.st_mtime_ns):
                raise ObjectNotFoundError(f"{key!r} has no version {version_id!r}")
            return OpenFile(os.dup(fd), st.st_size, self._cached_etag(path, st))

    def spool(self) -> BinaryIO:
        with no_room_is_transient("the upload"):
            fd, name = tempfile.mkstemp(prefix="spool-", dir=self.tmp_dir)
        return Spool(fd, Path(name), self)

    def put(
        self,
        key: str,
        body: bytes | BinaryIO,
        content_type: str,
        *,
        if_absent: bool = False,
        durable: bool = True,
    ) -> ObjectInfo:
        """Not `durable`: no fsync of the file or its folder (a reader still sees it whole or
        absent; after a power failure, the derived cache's reader tells: core.complete)."""
        path = self.path_for(key)
        if isinstance(body, Spool) and body.store is self:
            return self._put_spool(key, path, body, if_absent)
        with no_room_is_transient(repr(key)):
            tmp, etag = write_temp(self.tmp_dir, body, durable=durable)
            try:
                st = self._replace(key, path, tmp, if_absent, durable)
            finally:
                tmp.unlink(missing_ok=True)
        self._remember_etag(path, st, etag)
        self._note_written(key, st)
        return self._info_from(key, st, etag)

    def wrote(self, info: ObjectInfo) -> bool:
        """Whether `info`'s version was written by this store's put(), in this process. The
        uploads watcher leaves those to put()'s caller: an upload the API refuses is removed
        again, and the watcher must not accept it in between."""
        with self._etags_lock:
            return self._written.get(info.key) == info.version_id

    def _note_written(self, key: str, st: os.stat_result) -> None:
        with self._etags_lock:
            self._written[key] = _version(st.st_mtime_ns)
            self._written.move_to_end(key)
            while len(self._written) > _WRITTEN_REMEMBERED:
                self._written.popitem(last=False)

    def _put_spool(self, key: str, path: Path, spool: Spool, if_absent: bool) -> ObjectInfo:
        """put() of this store's own spool: fsynced and moved into place, not copied; its
        sha256, taken as it was written, is the ETag."""
        if spool.moved or spool.closed:
            raise ValueError("a spool is put once, before it is closed")
        with no_room_is_transient(repr(key)):
            os.fsync(spool.fileno())
            st = self._replace(key, path, spool.path, if_absent, durable=True)
        spool.moved = True
        etag = spool.sha256()
        self._remember_etag(path, st, etag)
        self._note_written(key, st)
        return self._info_from(key, st, etag)

    def delete(self, key: str) -> None:
        path = self.path_for(key)
        with self._lock(key):
            try:
                if not self._inside(path.parent, folder=True):
                    return
                path.unlink()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return
            except OSError as exc:
                if exc.errno == errno.ENAMETOOLONG:
                    return
                if exc.errno == errno.EPERM and path.is_dir():  # unlink of a folder
                    return
                raise
        with self._etags_lock:
            self._etags.pop(str(path), None)
        self._remove_empty_parents(path.parent)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix`, sorted by key (UTF-8 byte order)."""
        if not prefix.isascii():
            try:
                prefix.encode("utf-8")
            except UnicodeEncodeError:
                return  # no key holds a lone surrogate
        complete = prefix.split("/")[:-1]
        start = self.root
        for index, segment in enumerate(complete):
            start = start.joinpath(*segment_names(segment, first=index == 0))
        found: list[tuple[str, Path]] = []
        for path in walk_files(self.root, start):
            try:
                key = self.key_for(path)
            except UnmappablePathError:
                continue  # a dropped file whose name no key maps to; see key_from_parts
            if key.startswith(prefix):
                found.append((key, path))
        found.sort()
        for key, _ in found:
            info = self.head(key)
            if info is not None:
                yield info

    # -- internals ------------------------------------------------------------------------

    def _lock(self, key: str) -> threading.Lock:
        return self._locks[hash(key) % _LOCK_STRIPES]

    @contextlib.contextmanager
    def _open_for_read(self, key: str, path: Path) -> Iterator[int]:
        try:
            if not self._inside(path):
                raise ObjectNotFoundError(f"no object {key!r}")
            fd = os.open(path, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise ObjectNotFoundError(f"no object {key!r}") from exc
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                raise ObjectNotFoundError(f"no object {key!r}") from exc
            raise
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ObjectNotFoundError(f"no object {key!r}")
            yield fd
        finally:
            os.close(fd)

    def _replace(
        self, key: str, path: Path, tmp: Path, if_absent: bool, durable: bool
    ) -> os.stat_result:
        """Move `tmp` to `path` with an mtime newer than the old object's; the new stat.
        `if_absent`: raise UploadExistsError if there is an old object (under the key's lock,
        which every write of this store takes: one server owns the data folder)."""
        for _ in range(_REPLACE_ATTEMPTS):
            self._make_parents(key, path)
            with self._lock(key):
                try:
                    old = path.stat()
                except (FileNotFoundError, NotADirectoryError):
                    old = None
                if old is not None and stat.S_ISDIR(old.st_mode):
                    with contextlib.suppress(OSError):
                        path.rmdir()  # an empty folder left by someone: take its place
                    if path.exists():
                        raise KeyConflictError(
                            f"cannot store {key!r}: other keys start with {key + '/'!r}, and a "
                            "local folder cannot be both a file and a folder"
                        )
                    old = None
                if old is not None and if_absent:
                    raise UploadExistsError(f"{key!r} has been uploaded already")
                mtime_ns = time.time_ns()
                if old is not None and mtime_ns <= old.st_mtime_ns:
                    mtime_ns = old.st_mtime_ns + 1
                os.utime(tmp, ns=(mtime_ns, mtime_ns))
                st = tmp.stat()
                try:
                    os.replace(tmp, path)
                except FileNotFoundError:
                    continue  # a concurrent delete removed the (empty) parent folder
            if durable:
                fsync_dir(path.parent)
            return st
        raise KeyConflictError(f"cannot store {key!r}: its folder keeps disappearing")

    def _make_parents(self, key: str, path: Path) -> None:
        parent = path.parent
        if not self._inside(parent, folder=True):  # before mkdir: make nothing outside
            raise InvalidRequestError(
                f"cannot store {key!r}: a symbolic link leads out of the data folder"
            )
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            blocker = parent
            while blocker != self.root and not blocker.is_file():
                blocker = blocker.parent
            try:
                other = self.key_for(blocker)
            except InvalidRequestError:
                other = str(blocker.relative_to(self.root))
            raise KeyConflictError(
                f"cannot store {key!r}: {other!r} is already an object, and a local folder "
                "cannot be both a file and a folder"
            ) from exc
        if not self._inside(parent, folder=True):
            raise InvalidRequestError(
                f"cannot store {key!r}: a symbolic link leads out of the data folder"
            )

    def _remove_empty_parents(self, folder: Path) -> None:
        """Remove folders emptied by a delete, keeping the top level (`uploads/`, ...)."""
        while self.root not in (folder, folder.parent):
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

    def _info(self, key: str, path: Path, fd: int, st: os.stat_result) -> ObjectInfo:
        etag = self._cached_etag(path, st)
        if etag is None:
            etag = sha256_of(fd, st.st_size)
            self._remember_etag(path, st, etag)
        return self._info_from(key, st, etag)

    @staticmethod
    def _info_from(key: str, st: os.stat_result, etag: str) -> ObjectInfo:
        version = _version(st.st_mtime_ns)
        return ObjectInfo(
            key=key,
            size=st.st_size,
            etag=etag,
            content_type=guess_content_type(key),
            version_id=version,
            sequencer=version,
            last_modified=_last_modified(st.st_mtime_ns),
        )

    @staticmethod
    def _fingerprint(st: os.stat_result) -> tuple[int, int, int, int]:
        return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)

    def _cached_etag(self, path: Path, st: os.stat_result) -> str | None:
        with self._etags_lock:
            cached = self._etags.get(str(path))
            if cached is None or cached[:4] != self._fingerprint(st):
                return None
            self._etags.move_to_end(str(path))
            return cached[4]

    def _remember_etag(self, path: Path, st: os.stat_result, etag: str) -> None:
        with self._etags_lock:
            self._etags[str(path)] = (*self._fingerprint(st), etag)
            self._etags.move_to_end(str(path))
            while len(self._etags) > _ETAG_CACHE_SIZE:
                self._etags.popitem(last=False)
