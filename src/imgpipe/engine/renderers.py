"""Where rendering runs: in this process, or in child processes that may crash or hang alone.

`SubprocessRenderer` keeps N long-lived children. Each call borrows one; a child that dies or
overruns the time limit is killed and replaced, and the call raises WorkerCrashedError (a
transient error: the queue retries, then dead-letters). The server never shares its fate.
Renders and on-request transforms go to the same children, under the same limits.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from imgpipe.core.errors import WorkerCrashedError
from imgpipe.core.files import OpenFile
from imgpipe.core.rendering import RenderOptions, RenderResult
from imgpipe.core.transform import TransformRequest, Variant
from imgpipe.engine.pipeline import render, render_unhashed, sha256_hex
from imgpipe.engine.render_child import Channel, RenderFn, TransformFn
from imgpipe.engine.transform import transform


class InProcessRenderer:
    """Render in the calling thread (Lambda, `imgpipe process`); libvips releases the GIL."""

    def render(self, original: bytes | OpenFile, options: RenderOptions) -> RenderResult:
        return render(_bytes(original), options)

    def transform(self, original: bytes | OpenFile, request: TransformRequest) -> Variant:
        return transform(_bytes(original), request)


def _bytes(original: bytes | OpenFile) -> bytes:
    return original.read() if isinstance(original, OpenFile) else original


def _sha256(original: bytes | OpenFile) -> str:
    return original.sha256() if isinstance(original, OpenFile) else sha256_hex(original)


def _name(fn: Callable[..., object]) -> str:
    return f"{fn.__module__}:{fn.__qualname__}"


# A rendering process runs this, not a multiprocessing spawn: spawn runs the parent's main
# script again in the child first, which for `imgpipe serve` is the whole CLI (typer, rich,
# the settings): 7.5 MB more in every rendering process, and nothing a render needs. As spawn
# does, it imports from the parent's sys.path (argv[2:]), not from its own working directory.
_CHILD_CODE = (
    "import sys; sys.path[:] = sys.argv[2:]; "
    "from imgpipe.engine.render_child import child_main; child_main()"
)


class _Child:
    def __init__(
        self,
        vips_concurrency: int,
        memory_bytes: int | None,
        render_fn: RenderFn,
        transform_fn: TransformFn,
    ) -> None:
        parent, child = socket.socketpair()
        env = dict(os.environ)
        env.setdefault("VIPS_CONCURRENCY", str(vips_concurrency))
        with parent, child:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _CHILD_CODE, str(child.fileno()), *sys.path],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                env=env,
            )
            self.conn = Channel(socket.socket(fileno=parent.detach()))
        # A process that died starting up is found out by its first job (EOF: "died")
        with contextlib.suppress(OSError):
            self.conn.send((_name(render_fn), memory_bytes, _name(transform_fn)))
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
        render_fn: RenderFn = render_unhashed,
        transform_fn: TransformFn = transform,
    ) -> None:
        """`render_fn` and `transform_fn` run in the children; they must be importable by name
        (tests pass decoders that hang, crash or hoard memory, to exercise the real limits).
        A result without the sha256 (render_unhashed's) gets it here, hashed while the child
        renders."""
        self._timeout_s = timeout_s
        self._vips_concurrency = vips_concurrency
        self._max_jobs = max_jobs_per_child
        self._memory_bytes = memory_mb * 1024 * 1024 if memory_mb else None
        self._render_fn = render_fn
        self._transform_fn = transform_fn
        self._idle: queue.Queue[_Child] = queue.Queue()
        self._all: list[_Child] = []
        self._lock = threading.Lock()
        self._closed = False
        for _ in range(processes):
            self._idle.put(self._add())

    def _add(self) -> _Child:
        child = _Child(
            self._vips_concurrency, self._memory_bytes, self._render_fn, self._transform_fn
        )
        with self._lock:
            self._all.append(child)
        return child

    def _replace(self, child: _Child) -> None:
        child.kill()
        with self._lock:
            self._all.remove(child)
        if not self._closed:
            self._idle.put(self._add())

    def render(self, original: bytes | OpenFile, options: RenderOptions) -> RenderResult:
        result: RenderResult
        result, digest = self._run("render", options, original)
        return result if result.sha256 is not None else result.with_sha256(digest)

    def transform(self, original: bytes | OpenFile, request: TransformRequest) -> Variant:
        variant: Variant
        variant, _ = self._run("transform", request, original)
        return variant

    def _run(self, kind: str, sent: object, original: bytes | OpenFile) -> tuple[Any, str]:
        """One job in a child: (what it returned, the original's sha256 for a render, hashed
        meanwhile)."""
        if self._closed:
            raise WorkerCrashedError("the renderer is shut down")
        child = self._idle.get()
        try:
            # A render's options only when they are new to this process. An open file goes
            # over as its descriptor, and the process reads it itself: its bytes are never
            # copied into this process or through the socket. Bytes go raw: pickled, they were
            # copied once more with the GIL held, the largest share of the server process's
            # own GIL time in the end-to-end bench (py-spy --gil).
            size = original.size if isinstance(original, OpenFile) else None
            if kind == "render":
                child.conn.send((kind, None if sent is child.options else sent, size))
                child.options = sent  # type: ignore[assignment]  # a render's RenderOptions
            else:
                child.conn.send((kind, sent, size))
            if isinstance(original, OpenFile):
                child.conn.send_fd(original.fd)
            else:
                child.conn.send_bytes(original)
            digest = _sha256(original) if kind == "render" else ""  # while the child works
            if not child.conn.poll(self._timeout_s):
                self._replace(child)
                raise WorkerCrashedError(
                    f"rendering took longer than {self._timeout_s:g} s; the process was killed"
                )
            reply, payload = child.conn.recv()
        except (EOFError, OSError, BrokenPipeError) as exc:
            code = child.exit_code()
            self._replace(child)
            raise WorkerCrashedError(f"the rendering process died (exit code {code})") from exc
        child.jobs += 1
        if child.jobs >= self._max_jobs:
            self._retire(child)
        else:
            self._idle.put(child)
        if reply == "error":
            raise payload
        return payload, digest

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
