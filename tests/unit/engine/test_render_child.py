"""A rendering process's side (`render_child`), run in threads over a real socketpair: the
framing carries what the parent sends, and the loop hands memory back once it has been idle
after a job, never while jobs keep coming."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imgpipe.config import Settings
from imgpipe.core.files import OpenFile
from imgpipe.core.rendering import RenderOptions, RenderResult
from imgpipe.engine import render_child
from imgpipe.engine.render_child import Channel

OPTIONS = Settings().render_options()
IDLE_S = 0.1


@pytest.fixture
def channels() -> Iterator[tuple[Channel, Channel]]:
    left, right = socket.socketpair()
    pair = Channel(left), Channel(right)
    yield pair
    for channel in pair:
        channel.close()


def test_the_framing_carries_messages_and_bytes_larger_than_the_socket_buffer(
    channels: tuple[Channel, Channel],
) -> None:
    parent, child = channels
    original = os.urandom(24 * 1024 * 1024)  # many socket buffers: many reads on one side
    sender = threading.Thread(
        target=lambda: (parent.send(("render", OPTIONS, None)), parent.send_bytes(original))
    )
    sender.start()
    assert child.poll(10)
    assert child.recv() == ("render", OPTIONS, None)
    assert child.recv_bytes() == original
    sender.join(10)
    assert not child.poll(0.05)  # nothing more to read
    parent.send_bytes(b"")
    assert child.recv_bytes() == b""
    parent.close()
    assert child.poll(1)  # the end is readable, and reads as EOF
    with pytest.raises(EOFError):
        child.recv()


def test_a_message_cut_short_by_the_end_is_an_eof() -> None:
    left, right = socket.socketpair()
    left.sendall((100).to_bytes(8, "big") + b"only forty bytes of the hundred announced.")
    left.close()
    with right, pytest.raises(EOFError):
        Channel(right).recv_bytes()


def opened(path: Path, body: bytes) -> OpenFile:
    """`body` written to `path`, and the file open for reading, as the local store opens it."""
    path.write_bytes(body)
    return OpenFile(os.open(path, os.O_RDONLY), len(body))


def test_a_descriptor_crosses_as_the_receivers_own_and_a_plain_byte_is_refused(
    channels: tuple[Channel, Channel], tmp_path: Path
) -> None:
    parent, child = channels
    with opened(tmp_path / "original", b"the original") as original:
        parent.send_fd(original.fd)
        received = child.recv_fd()
    # the sender's descriptor is closed; the copy still reads the file, and is not inherited
    try:
        assert received != original.fd
        assert os.pread(received, 100, 0) == b"the original"
        assert not os.get_inheritable(received)
    finally:
        os.close(received)

    left, right = socket.socketpair()
    with left, right:
        left.sendall(b"x")  # a byte where a descriptor was expected
        with pytest.raises(OSError, match="a descriptor was expected"):
            Channel(right).recv_fd()
        left.shutdown(socket.SHUT_WR)
        with pytest.raises(EOFError):
            Channel(right).recv_fd()


def fake_render(data: bytes, options: RenderOptions) -> RenderResult:
    return RenderResult(facts={"bytes": len(data)}, renditions=())


def send_job(conn: Channel, data: bytes) -> None:
    conn.send(("render", OPTIONS, None))
    conn.send_bytes(data)


def test_the_loop_reads_a_sent_file_up_to_the_size_it_was_sent_and_closes_it(
    channels: tuple[Channel, Channel], tmp_path: Path
) -> None:
    parent, child = channels
    path = tmp_path / "original"
    loop = threading.Thread(target=render_child._serve, args=(child, fake_render))
    loop.start()
    try:
        with opened(path, b"0123456789") as original:
            before = set(os.listdir("/proc/self/fd"))
            with path.open("ab") as out:  # appended after it was opened and sized
                out.write(b"more")
            parent.send(("render", OPTIONS, original.size))
            parent.send_fd(original.fd)
            assert reply(parent).facts == {"bytes": 10}
            # the loop closed its copy; the sender's own is untouched (pread: no shared offset)
            assert set(os.listdir("/proc/self/fd")) == before
            assert os.lseek(original.fd, 0, os.SEEK_CUR) == 0
        send_job(parent, b"bytes again")  # and the next job may come as bytes
        assert reply(parent).facts == {"bytes": 11}
    finally:
        parent.send(None)
        loop.join(5)
    assert not loop.is_alive()


def reply(conn: Channel) -> RenderResult:
    kind, result = conn.recv()
    assert kind == "ok"
    return result  # type: ignore[no-any-return]


def test_memory_is_handed_back_once_per_idle_spell_after_a_job(
    channels: tuple[Channel, Channel],
) -> None:
    parent, child = channels
    trims: list[float] = []
    trimmed = threading.Event()

    def on_idle() -> None:
        trims.append(time.monotonic())
        trimmed.set()

    loop = threading.Thread(target=render_child._serve, args=(child, fake_render, IDLE_S, on_idle))
    loop.start()
    try:
        time.sleep(IDLE_S * 3)
        assert trims == []  # idle before any job: nothing to hand back
        # Two jobs queued before either is answered: the second is waiting when the first
        # is done, so no trim comes between them, however the threads are scheduled
        send_job(parent, b"abc")
        send_job(parent, b"abcd")
        assert reply(parent).facts == {"bytes": 3}
        assert reply(parent).facts == {"bytes": 4}
        # then the idle spell: one trim, and no other however long it lasts
        assert trimmed.wait(10)
        time.sleep(IDLE_S * 3)
        assert len(trims) == 1
        trimmed.clear()
        send_job(parent, b"x")
        reply(parent)
        assert trimmed.wait(10)
        assert len(trims) == 2
    finally:
        parent.send(None)
        loop.join(5)
    assert not loop.is_alive()
