"""The faults the soak injects, each a context manager that undoes it on the way out
(an exception or Ctrl-C included), and the checks of what the root-only ones need."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

DB_NAME = "imgpipe.db"
# Not the -shm: SQLite maps it into memory, and a write to a mapping of an immutable file on
# ext4 is a SIGBUS, which kills any process using SQLite (it stays the server's to survive).
DB_FILES = (DB_NAME, f"{DB_NAME}-wal")
FILLER = "soak-filler"
LOCK_WAIT_S = 30.0  # to take the lock, the server's current write must end first

ROOT_FAULTS = frozenset({"read-only", "full-disk"})
ALL_FAULTS = ("kill-server", "kill-renderer", "read-only", "locked", "full-disk")


def root_faults_unavailable() -> str | None:
    """Why the faults that need root (chattr +i, mounting a disk) cannot run here, or None."""
    if os.geteuid() != 0:
        return "not root: chattr +i and mount need root"
    tools = ("chattr", "mkfs.ext4", "mount", "umount")
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not found (chattr and mkfs.ext4 are in e2fsprogs)"
    return None


def _run(*argv: str) -> None:
    try:
        subprocess.run(argv, check=True, capture_output=True, timeout=60)
    except subprocess.CalledProcessError as exc:
        said = (exc.stderr or b"").decode(errors="replace").strip()
        raise FaultError(f"{' '.join(argv)}: {said or exc}") from exc


class FaultError(RuntimeError):
    """A fault could not be set up (or undone): a tool failed."""


@contextlib.contextmanager
def small_disk(mount_point: Path, image: Path, size_mb: int) -> Iterator[None]:
    """A small ext4 file system of its own for the data folder (a sparse image file on a loop
    device): one that can be filled. Not a tmpfs: there, chattr +i stops no write through a
    descriptor already open, so the server's SQLite connections would never see it."""
    mount_point.mkdir(parents=True, exist_ok=True)
    with image.open("wb") as sparse:
        sparse.truncate(size_mb * 2**20)
    try:
        _run("mkfs.ext4", "-q", "-F", "-m", "0", str(image))
        _run("mount", "-o", "loop", str(image), str(mount_point))
        try:
            yield
        finally:
            try:
                _run("umount", str(mount_point))
            except FaultError:
                _run("umount", "--lazy", str(mount_point))  # still busy: detach it anyway
    finally:
        image.unlink(missing_ok=True)


@contextlib.contextmanager
def read_only_db(state_dir: Path) -> Iterator[list[str]]:
    """The database and its WAL made immutable: a write, even by root and through a connection
    already open, fails ('disk I/O error')."""
    files = [state_dir / name for name in DB_FILES if (state_dir / name).exists()]
    done: list[Path] = []
    try:
        for path in files:
            _run("chattr", "+i", str(path))
            done.append(path)
        yield [p.name for p in done]
    finally:
        for path in done:
            _run("chattr", "-i", str(path))


@contextlib.contextmanager
def locked_db(state_dir: Path) -> Iterator[None]:
    """Another connection holds `BEGIN EXCLUSIVE`: the server's writes wait, then fail."""
    conn = sqlite3.connect(state_dir / DB_NAME, timeout=LOCK_WAIT_S, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        conn.close()


@contextlib.contextmanager
def full_disk(data_dir: Path) -> Iterator[int]:
    """A filler file takes every free byte of the data folder's file system (the tmpfs);
    yields its size in bytes."""
    path = data_dir / FILLER
    size = 0
    try:
        with path.open("wb", buffering=0) as filler:
            for chunk in (1 << 20, 1 << 12):  # then page by page: nothing left at all
                block = bytes(chunk)
                while True:
                    try:
                        size += filler.write(block) or 0
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
        yield size
    finally:
        path.unlink(missing_ok=True)


def kill(pid: int) -> bool:
    """kill -9; False if the process was already gone."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def busiest(pids: list[int]) -> int | None:
    """A process that is running now (state R) if any: a rendering process mid-render."""
    for pid in pids:
        with contextlib.suppress(OSError):
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "R":
                return pid
    return pids[0] if pids else None
