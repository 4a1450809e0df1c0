"""The on-request peers: thumbor (PyPI, in a venv of its own, result storage on) and ipx (npm,
sharp underneath); how each is installed, configured for the same requests, started on
loopback pinned to one core, and asked for a transform (imgpipe's side: imgpipe_peer.py).

    Request            one transform, as every server is asked for it: fill WxH, a format
                       and a quality; no upscaling, EXIF orientation applied, no metadata
    Peer               what the section needs of a server: install(), serve(...) (a context
                       manager yielding a Server), path(file, request, nonce) (the path to GET)
    Thumbor, Ipx       the peers; launch() starts any server pinned, until it answers

A nonce makes a request new to every cache: thumbor and ipx read the original from a folder,
so a nonce names another hard link to the same file (`c/{nonce}/{name}`): the same bytes, the
same request, a URL no cache has seen. imgproxy's grammar has a cachebuster (`cb:`) for that.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from engine_runs import ENGINE_ENV

BENCH = Path(__file__).resolve().parent
PEERS_DIR = BENCH / ".peers"  # installed at bench time, never committed
THUMBOR_VENV = PEERS_DIR / "thumbor"
THUMBOR_REQUIREMENTS = BENCH / "thumbor" / "requirements.txt"
IPX_DIR = BENCH / "ipx"
START_S = 60  # a server that does not answer by then did not start


class PeerUnavailable(RuntimeError):
    """Why a peer cannot be measured here: the message goes on the page."""


@dataclass(frozen=True)
class Request:
    name: str  # as the page names it: "WebP q80"
    width: int
    height: int
    format: str  # "webp" or "jpeg"
    quality: int


@dataclass(frozen=True)
class Server:
    url: str  # http://127.0.0.1:port
    pid: int  # the root of its process tree, for its CPU


class Peer(Protocol):
    label: str

    def install(self) -> str:
        """Install if needed; the version measured (PeerUnavailable if it cannot be)."""
        ...

    def serve(
        self, originals: Path, files: list[Path], work: Path
    ) -> AbstractContextManager[Server]:
        """A server on loopback, pinned to core 0, serving `files` (copied into `originals`)."""
        ...

    def stage(self, server: Server, files: list[Path], nonces: list[str]) -> None:
        """Make each file new to every cache of `server` under its nonce, once stage_links
        has linked it (untimed, before a pass)."""
        ...

    def path(self, file: Path, request: Request, nonce: str) -> str:
        """The path to GET for `request` on `file`; a new `nonce` is new to every cache."""
        ...


def linked_name(file: Path, nonce: str) -> str:
    """Where a folder-reading server finds `file` under `nonce` (stage_links makes it)."""
    return f"c/{nonce}/{file.name}" if nonce else file.name


def stage_links(originals: Path, files: list[Path], nonces: list[str]) -> None:
    """Hard links to the originals under each nonce: untimed, before a pass."""
    for nonce, file in zip(nonces, files, strict=True):
        target = originals / linked_name(file, nonce)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            os.link(originals / file.name, target)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str, probe: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=2)
    try:
        conn.request("GET", probe)
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


@contextmanager
def launch(argv: list[str], port: int, log: Path, probe: str, **env: str) -> Iterator[Server]:
    """`argv` pinned to core 0 (taskset execs it: the pid is the server's), until `probe`
    answers 200; stopped with SIGTERM (then killed) when the block ends."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["taskset", "-c", "0", *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **ENGINE_ENV, **env},
        )
        server = Server(f"http://127.0.0.1:{port}", process.pid)
        try:
            deadline = time.monotonic() + START_S
            while not _answers(server.url, probe):
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text(errors="replace")[-400:]
                    raise PeerUnavailable(f"{argv[0]} did not start: {tail}")
                time.sleep(0.1)
            yield server
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def _run(argv: list[str], what: str, cwd: Path | None = None) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PeerUnavailable(f"{what} failed: {done.stderr.strip()[-300:]}")
    return done.stdout.strip()


def thumbor_conf(originals: Path, results: Path) -> str:
    """thumbor.conf (Python, read by thumbor's derpconf): the originals from a folder, no
    storage of originals, result storage in files and used for unsafe URLs too (its default
    keeps only signed ones), EXIF orientation applied (off by default), baseline JPEG
    (progressive by default); EXIF is not kept by default (PRESERVE_EXIF_INFO)."""
    settings: dict[str, object] = {
        "LOADER": "thumbor.loaders.file_loader",
        "FILE_LOADER_ROOT_PATH": str(originals),
        "STORAGE": "thumbor.storages.no_storage",
        "RESULT_STORAGE": "thumbor.result_storages.file_storage",
        "RESULT_STORAGE_FILE_STORAGE_ROOT_PATH": str(results),
        "RESULT_STORAGE_STORES_UNSAFE": True,
        "RESULT_STORAGE_EXPIRATION_SECONDS": 0,
        "RESPECT_ORIENTATION": True,
        "PROGRESSIVE_JPEG": False,
        "PRESERVE_EXIF_INFO": False,
    }
    return "".join(f"{key} = {value!r}\n" for key, value in settings.items())


class Thumbor:
    """thumbor's tornado server, PIL engine, file loader and file result storage."""

    label = "thumbor"

    def install(self) -> str:
        python = THUMBOR_VENV / "bin" / "python"
        stamp = THUMBOR_VENV / ".requirements-sha256"
        wanted = hashlib.sha256(THUMBOR_REQUIREMENTS.read_bytes()).hexdigest()
        if not stamp.exists() or stamp.read_text() != wanted:
            _run([sys.executable, "-m", "venv", "--clear", str(THUMBOR_VENV)], "python -m venv")
            pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            _run([*pip, "-r", str(THUMBOR_REQUIREMENTS)], "pip install thumbor")
            stamp.write_text(wanted)
        code = "import thumbor, PIL; print(thumbor.__version__, PIL.__version__)"
        thumbor, pillow = _run([str(python), "-c", code], "import thumbor").split()
        return f"thumbor {thumbor} (Pillow {pillow})"

    @contextmanager
    def serve(self, originals: Path, files: list[Path], work: Path) -> Iterator[Server]:
        conf = work / "thumbor.conf"
        conf.write_text(thumbor_conf(originals, work / "results"))
        port = free_port()
        argv = [str(THUMBOR_VENV / "bin" / "thumbor"), "--ip", "127.0.0.1", "--port", str(port)]
        argv += ["--conf", str(conf), "--log-level", "warning"]
        with launch(argv, port, work / "thumbor.log", "/healthcheck") as server:
            yield server

    def stage(self, server: Server, files: list[Path], nonces: list[str]) -> None:
        """Nothing: it reads the links stage_links made, a new file to it under each name."""

    def path(self, file: Path, request: Request, nonce: str) -> str:
        filters = f"format({request.format}):quality({request.quality}):no_upscale()"
        size = f"{request.width}x{request.height}"  # no fit-in: fill, cropped at the centre
        return f"/unsafe/{size}/filters:{filters}/{linked_name(file, nonce)}"


class Ipx:
    """ipx's own node server (createIPXNodeServer) over its file storage (bench/ipx/server.mjs):
    it keeps no rendered results; its caching is HTTP's (Cache-Control max-age 60,
    Last-Modified and ETag), left to a browser or CDN in front of it."""

    label = "ipx"

    def install(self) -> str:
        if not (IPX_DIR / "node_modules" / "ipx").is_dir():
            _run(["npm", "ci", "--no-audit", "--no-fund"], "npm ci (bench/ipx)", cwd=IPX_DIR)
        modules = IPX_DIR / "node_modules"
        ipx = json.loads((modules / "ipx" / "package.json").read_text())["version"]
        sharp = json.loads((modules / "sharp" / "package.json").read_text())["version"]
        node = _run(["node", "--version"], "node --version")
        return f"ipx {ipx} (sharp {sharp}, Node {node})"

    @contextmanager
    def serve(self, originals: Path, files: list[Path], work: Path) -> Iterator[Server]:
        port = free_port()
        argv = ["node", str(IPX_DIR / "server.mjs"), str(originals), str(port)]
        probe = f"/s_16x16/{files[0].name}"
        with launch(argv, port, work / "ipx.log", probe) as server:
            yield server

    def stage(self, server: Server, files: list[Path], nonces: list[str]) -> None:
        """Nothing: it reads the links stage_links made, a new file to it under each name."""

    def path(self, file: Path, request: Request, nonce: str) -> str:
        # s_WxH is sharp's resize(W, H) at its default fit, cover: fill, centred; without
        # the enlarge modifier ipx clamps the size to the original's (no upscaling)
        modifiers = f"s_{request.width}x{request.height},f_{request.format},q_{request.quality}"
        return f"/{modifiers}/{linked_name(file, nonce)}"
