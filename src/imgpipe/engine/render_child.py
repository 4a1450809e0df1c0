"""A rendering process's side of `renderers.SubprocessRenderer`: the socket's framing
(`Channel`, which the parent uses too) and the loop that runs one job at a time: a render, or
an on-request transform.

A rendering process imports this module and the render function its parent names
(pipeline.render_unhashed), not the parent's side in `renderers`: what it imports it holds for
its whole life, so it imports only what a render uses (tests/integration/test_containment.py).
The transform function it is named too is imported at its first transform, not before.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import pickle
import resource
import select
import signal
import socket
import struct
import sys
from collections.abc import Callable
from typing import Any

from imgpipe.core.errors import ImgpipeError, ProcessingError, TooManyPixelsError
from imgpipe.core.files import read_at_most
from imgpipe.core.rendering import RenderOptions, RenderResult
from imgpipe.core.transform import TransformRequest, Variant
from imgpipe.engine.memory import hand_back_free_memory

RenderFn = Callable[[bytes, RenderOptions], RenderResult]
TransformFn = Callable[[bytes, TransformRequest], Variant]  # named to the child, not sent
_FD = struct.Struct("i")  # a descriptor in SCM_RIGHTS ancillary data


class Channel:
    """Messages over a stream socket, each an 8-byte length and then a pickle or raw bytes:
    what multiprocessing.connection.Connection did here, without importing multiprocessing
    (with tempfile, shutil and random, 1 MB more in every rendering process)."""

    _LENGTH = struct.Struct("!Q")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._poller = select.poll()  # not select.select: it refuses a descriptor over 1023
        self._poller.register(sock, select.POLLIN)

    def send(self, message: Any) -> None:
        self.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

    def send_bytes(self, data: bytes) -> None:
        self._sock.sendall(self._LENGTH.pack(len(data)))
        self._sock.sendall(data)  # not concatenated: no copy of a 100 MB original

    def send_fd(self, fd: int) -> None:
        """A copy of the descriptor `fd` for the other process (SCM_RIGHTS), on one byte."""
        socket.send_fds(self._sock, [b"\0"], [fd])

    def recv_fd(self) -> int:
        """The descriptor sent with send_fd, now this process's own (close-on-exec)."""
        # Not socket.recv_fds: it drops its flags argument, so MSG_CMSG_CLOEXEC with it.
        data, ancillary, _, _ = self._sock.recvmsg(
            1, socket.CMSG_SPACE(_FD.size), socket.MSG_CMSG_CLOEXEC
        )
        fds: list[int] = [
            fd
            for level, kind, payload in ancillary
            if (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
            for (fd,) in _FD.iter_unpack(payload[: len(payload) - len(payload) % _FD.size])
        ]
        if len(fds) == 1 and data:
            return fds[0]
        for fd in fds:
            os.close(fd)
        if not data:
            raise EOFError("the other end closed the socket")
        raise OSError("a descriptor was expected and none came")

    def recv(self) -> Any:
        # Only this process's own parent or child writes to the socket (a socketpair).
        return pickle.loads(self.recv_bytes())  # noqa: S301

    def recv_bytes(self) -> bytes:
        (size,) = self._LENGTH.unpack(self._exactly(self._LENGTH.size))
        return self._exactly(size)

    def _exactly(self, size: int) -> bytes:
        # MSG_WAITALL: one read into one buffer, unless a signal or the end cuts it short.
        parts = [self._sock.recv(size, socket.MSG_WAITALL)]
        received = len(parts[0])
        while received < size:
            part = self._sock.recv(size - received, socket.MSG_WAITALL)
            if not part:
                raise EOFError("the other end closed the socket")
            parts.append(part)
            received += len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def poll(self, timeout_s: float) -> bool:
        """Whether a message (or the end) can be read within `timeout_s`."""
        return bool(self._poller.poll(timeout_s * 1000))

    def close(self) -> None:
        self._sock.close()


def child_main() -> None:
    """A rendering process: its end of the socket is argv[1]. The first message says what
    renders and the memory cap; then one job at a time until EOF."""
    conn = Channel(socket.socket(fileno=int(sys.argv[1])))
    # Ctrl-C reaches the whole process group: the parent decides when children stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    render_name, memory_bytes, transform_name = conn.recv()
    render_fn = named(render_name)
    if memory_bytes is not None:
        # A decoder that runs away with memory fails here (MemoryError or a libvips error),
        # or dies, instead of taking the server with it.
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    with contextlib.suppress(EOFError, OSError, KeyboardInterrupt):  # the parent is gone
        _serve(conn, render_fn, transform_name=transform_name)


@functools.cache
def named(name: str) -> Any:
    """The function `module:qualname`, imported (once)."""
    module, _, qualname = name.partition(":")
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def _read_sent_file(conn: Channel, size: int) -> bytes:
    fd = conn.recv_fd()
    try:
        return read_at_most(fd, size)  # failing, the process ends: the parent's call retries
    finally:
        os.close(fd)


# A rendering process with no job for this long hands back what glibc kept from its last
# images (malloc_trim): an idle server's rendering processes shrink to little more than their
# imports. Under load the next job is already waiting, so no job pays for it.
IDLE_TRIM_S = 1.0


def _serve(
    conn: Channel,
    render_fn: RenderFn,
    idle_s: float = IDLE_TRIM_S,
    on_idle: Callable[[], None] = hand_back_free_memory,
    transform_name: str = "imgpipe.engine.transform:transform",
) -> None:
    options: RenderOptions | None = None
    trimmed = True  # nothing to hand back before the first job
    while True:
        if not trimmed and not conn.poll(idle_s):
            on_idle()
            trimmed = True
        # A job is two messages: its kind and what it takes (a render's options, None for the
        # same as last time; a transform's request), and the size of the original if it comes
        # as a file; then the original's descriptor or its bytes.
        request = conn.recv()
        if request is None:
            return
        kind, sent, size = request
        data = conn.recv_bytes() if size is None else _read_sent_file(conn, size)
        work: Callable[[], Any]
        if kind == "transform":
            work = functools.partial(_call, transform_name, data, sent)
        else:
            options = sent if sent is not None else options
            assert options is not None  # the parent sends them with a child's first render
            work = functools.partial(render_fn, data, options)
        conn.send(_reply(work))
        del data, work  # not kept while idle
        trimmed = False


def _call(name: str, *args: Any) -> Any:
    return named(name)(*args)


def _reply(work: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", what `work` returned) or ("error", the ImgpipeError it comes to)."""
    reply: tuple[str, Any]
    try:
        reply = ("ok", work())
    except ImgpipeError as exc:
        reply = ("error", exc)
    except MemoryError:
        reply = ("error", TooManyPixelsError("not enough memory to process this image"))
    except Exception as exc:  # an engine bug must not kill the child's loop
        reply = ("error", ProcessingError(f"{type(exc).__name__}: {exc}"))
    return reply
