"""`OpenFile`, the local store's original held open for a render: it reads and hashes the size
it was opened with, across its hashing buffer's boundaries, and a file cut short in place while
it is open (a `cp` over it in the data folder) reads short instead of killing the process."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from imgpipe.core.files import HASH_CHUNK, OpenFile


def opened(path: Path) -> OpenFile:
    fd = os.open(path, os.O_RDONLY)
    return OpenFile(fd, os.fstat(fd).st_size)


@pytest.mark.parametrize(
    "size", [0, 1, HASH_CHUNK - 1, HASH_CHUNK, HASH_CHUNK + 1, 3 * HASH_CHUNK + 7]
)
def test_read_and_sha256_cover_exactly_the_file(tmp_path: Path, size: int) -> None:
    body = os.urandom(size)
    path = tmp_path / "original"
    path.write_bytes(body)
    with opened(path) as original:
        assert original.read() == body
        assert original.sha256() == hashlib.sha256(body).hexdigest()
        assert os.lseek(original.fd, 0, os.SEEK_CUR) == 0  # pread: the offset is untouched


def test_bytes_appended_after_opening_are_not_read(tmp_path: Path) -> None:
    path = tmp_path / "original"
    path.write_bytes(b"a" * 1000)
    with opened(path) as original:
        with path.open("ab") as out:
            out.write(b"b" * 1000)
        assert original.read() == b"a" * 1000
        assert original.sha256() == hashlib.sha256(b"a" * 1000).hexdigest()


def test_a_file_cut_short_while_open_reads_short(tmp_path: Path) -> None:
    body = os.urandom(2 * HASH_CHUNK)
    path = tmp_path / "original"
    path.write_bytes(body)
    with opened(path) as original:
        os.truncate(path, 1000)  # what `cp new.jpg` over it does first
        assert original.read() == body[:1000]
        assert original.sha256() == hashlib.sha256(body[:1000]).hexdigest()


def test_closing_closes_the_descriptor(tmp_path: Path) -> None:
    path = tmp_path / "original"
    path.write_bytes(b"x")
    with opened(path) as original:
        fd = original.fd
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(fd)
