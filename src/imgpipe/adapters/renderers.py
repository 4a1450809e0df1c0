"""Where rendering runs: in this process, or in child processes that may crash or hang alone.

`SubprocessRenderer` keeps N long-lived children. Each call borrows one; a child that dies or
overruns the time limit is killed and replaced, and the call raises WorkerCrashedError (a
transient error: the queue retries, then dead-letters). The server never shares its fate.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import queue
import resource
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from imgpipe.core.errors import (
    ImgpipeError,
    ProcessingError,
    TooManyPixelsError,
    WorkerCrashedError,
)
from imgpipe.core.imaging import RenderOptions, RenderResult, hand_back_free_memory, render


class InProcessRenderer:
    """Render in the calling thread (Lambda, `imgpipe process`); libvips releases the GIL."""

    def render(self, data: bytes, options: RenderOptions) -> RenderResult:
        return render(data, options)


RenderFn = Callable[[bytes, RenderOptions], RenderResult]

# A rendering process runs this, not a multiprocessing spawn: spawn runs the parent's main
# script again in the child first, which for `imgpipe serve` is the whole CLI (typer, rich,
# the settings): 7.5 MB more in every rendering process, and nothing a render needs. As spawn
# does, it imports from the parent's sys.path (argv[2]), not from its own working directory.
_CHILD_CODE = (
    "import json, sys; sys.path[:] = json.loads(sys.argv[2]); "
    "from imgpipe.adapters.renderers import child_main; child_main()"
)


def child_main() -> None:
    """A rendering process: its end of the socket is argv[1]. The first message says what
    renders and the memory cap; then one job at a time until EOF."""
    conn = Connection(int(sys.argv[1]))
    # Ctrl-C reaches the whole process group: the parent decides when children stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    render_name, memory_bytes = conn.recv()
    module, _, qualname = render_name.partition(":")
    render_fn: Any = importlib.import_module(module)
    for name in qualname.split("."):
        render_fn = getattr(render_fn, name)
    if memory_bytes is not None:
        # A decoder that runs away with memory fails here (MemoryError or a libvips error),
        # or dies, instead of taking the server with it.
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    with contextlib.suppress(EOFError, OSError, KeyboardInterrupt):  # the parent is gone
        _serve(conn, render_fn)


# A rendering process with no job for this long hands back what glibc kept from its last
# images (malloc_trim): an idle server's rendering processes shrink to little more than their
# imports. Under load the next job is already waiting, so no job pays for it.
IDLE_TRIM_S = 1.0


def _serve(
    conn: Connection,
    render_fn: RenderFn,
    idle_s: float = IDLE_TRIM_S,
    on_idle: Callable[[], None] = hand_back_free_memory,
) -> None:
    options: RenderOptions | None = None
    trimmed = True  # nothing to hand back before the first job
    while True:
        if not trimmed and not conn.poll(idle_s):
            on_idle()
            trimmed = True
        # A job is two messages: the options (None: the same as last time), then the original.
        request = conn.recv()
        if request is None:
            return
        options = request[1] if request[1] is not None else options
        data = conn.recv_bytes()
        assert options is not None  # the parent sends them with a child's first job
        reply: tuple[str, Any]
        try:
            reply = ("ok", render_fn(data, options))
        except ImgpipeError as exc:
            reply = ("error", exc)
        except MemoryError:
            reply = ("error", TooManyPixelsError("not enough memory to process this image"))
        except Exception as exc:  # an engine bug must not kill the child's loop
            reply = ("error", ProcessingError(f"{type(exc).__name__}: {exc}"))
        conn.send(reply)
        del data, reply  # not kept while idle
        trimmed = False


class _Child:
    def __init__(
        self, vips_concurrency: int, memory_bytes: int | None, render_fn: RenderFn
    ) -> None:
        parent, child = socket.socketpair()
        env = dict(os.environ)
        env.setdefault("VIPS_CONCURRENCY", str(vips_concurrency))
        with parent, child:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _CHILD_CODE, str(child.fileno()), json.dumps(sys.path)],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                env=env,
            )
            self.conn = Connection(parent.detach())
        # A process that died starting up is found out by its first job (EOF: "died")
        with contextlib.suppress(OSError):
            self.conn.send((f"{render_fn.__module__}:{render_fn.__qualname__}", memory_bytes))
        self.jobs = 0
        self.options: RenderOptions | None = None  # what the process was sent last

    def exit_code(self) -> int | None:
        """How the process ended (-N: killed by signal N); None if it still runs after 1 s."""
        try:
            return self.process.wait(1)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(5)
        self.conn.close()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)
        try:
            self.process.wait(2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.conn.close()


class SubprocessRenderer:
    """A fixed pool of rendering processes with a per-call time limit."""

    def __init__(
        self,
        processes: int,
        timeout_s: float,
        vips_concurrency: int = 1,
        max_jobs_per_child: int = 500,
        memory_mb: int | None = None,
        render_fn: RenderFn = render,
    ) -> None:
        """`render_fn` runs in the children; it must be importable by name (tests pass
        decoders that hang, crash or hoard memory, to exercise the real limits)."""
        self._timeout_s = timeout_s
        self._vips_concurrency = vips_concurrency
        self._max_jobs = max_jobs_per_child
        self._memory_bytes = memory_mb * 1024 * 1024 if memory_mb else None
        self._render_fn = render_fn
        self._idle: queue.Queue[_Child] = queue.Queue()
        self._all: list[_Child] = []
        self._lock = threading.Lock()
        self._closed = False
        for _ in range(processes):
            self._idle.put(self._add())

    def _add(self) -> _Child:
        child = _Child(self._vips_concurrency, self._memory_bytes, self._render_fn)
        with self._lock:
            self._all.append(child)
        return child

    def _replace(self, child: _Child) -> None:
        child.kill()
        with self._lock:
            self._all.remove(child)
        if not self._closed:
            self._idle.put(self._add())

    def render(self, data: bytes, options: RenderOptions) -> RenderResult:
        if self._closed:
            raise WorkerCrashedError("the renderer is shut down")
        child = self._idle.get()
        try:
            # The options only when they are new to this process, and the original as raw
            # bytes: pickled, it was copied once more with the GIL held, the largest share of
            # the server process's own GIL time in the end-to-end bench (py-spy --gil).
            child.conn.send(("render", None if options is child.options else options))
            child.options = options
            child.conn.send_bytes(data)
            if not child.conn.poll(self._timeout_s):
                self._replace(child)
                raise WorkerCrashedError(
                    f"rendering took longer than {self._timeout_s:g} s; the process was killed"
                )
            kind, payload = child.conn.recv()
        except (EOFError, OSError, BrokenPipeError) as exc:
            code = child.exit_code()
            self._replace(child)
            raise WorkerCrashedError(f"the rendering process died (exit code {code})") from exc
        child.jobs += 1
        if child.jobs >= self._max_jobs:
            self._retire(child)
        else:
            self._idle.put(child)
        if kind == "error":
            raise payload
        result: RenderResult = payload
        return result

    def _retire(self, child: _Child) -> None:
        child.stop()
        with self._lock:
            self._all.remove(child)
        if not self._closed:
            self._idle.put(self._add())

    def pids(self) -> list[int]:
        with self._lock:
            return [c.process.pid for c in self._all]

    def close(self) -> None:
        self._closed = True
        with self._lock:
            children = list(self._all)
            self._all.clear()
        for child in children:
            child.stop()
