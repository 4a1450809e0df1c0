"""imgpipe's side of the on-request section: `imgpipe serve` with the corpus uploaded, asked
through its `/img` route with imgproxy's grammar. Until the served OpenAPI lists an `/img/`
route, serving raises PeerUnavailable and the page says the route is not built yet."""

from __future__ import annotations

import http.client
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from peer_servers import PeerUnavailable, Request, Server, free_port, launch

import e2e as e2e_bench


class Imgpipe:
    """`imgpipe serve` with the corpus uploaded through `POST /images` (the originals as a
    user's uploads), asked through `/img` with imgproxy's grammar, unsigned (`insecure`: a
    local server with no key). `fast`: with transform.fast_shrink_on_load, JPEGs decoded at the
    scale ipx's sharp picks, for a comparison at identical settings."""

    def __init__(self, *, fast: bool = False) -> None:
        self.fast = fast
        self.label = "imgpipe-fast" if fast else "imgpipe"
        self.ids: dict[tuple[str, str], str] = {}  # (corpus file name, nonce) -> imageId

    def install(self) -> str:
        from imgpipe import __version__

        return f"imgpipe {__version__}" + (" (fast_shrink_on_load)" if self.fast else "")

    @contextmanager
    def serve(self, originals: Path, files: list[Path], work: Path) -> Iterator[Server]:
        port = free_port()
        argv = [sys.executable, "-m", "imgpipe.entrypoints.cli", "serve", "--port", str(port)]
        argv += ["--data-dir", str(work / "data")]
        env = {"IMGPIPE_SERVER__RATE_LIMIT_PER_S": "0", "IMGPIPE_LOG_LEVEL": "WARNING"}
        env["IMGPIPE_TRANSFORM__FAST_SHRINK_ON_LOAD"] = "true" if self.fast else "false"
        with launch(argv, port, work / "serve.log", "/health", **env) as server:
            if not has_img_route(_get_json(server, "/openapi.json")):
                raise PeerUnavailable("the /img route is not built yet")
            self.ids = {}
            self.stage(server, files, [""] * len(files))
            yield server

    def stage(self, server: Server, files: list[Path], nonces: list[str]) -> None:
        """Each file uploaded again under each nonce, as an image of its own: a cachebuster
        is a new URL, but not a new image, and an image's twin (its 1/8 decode, kept by its
        first render that makes it) serves every URL of it."""
        ids = _upload(server, files)
        names = [(f.name, n) for f, n in zip(files, nonces, strict=True)]
        self.ids.update(zip(names, ids, strict=True))

    def path(self, file: Path, request: Request, nonce: str) -> str:
        return imgpipe_path(self.ids[(file.name, nonce)], request, nonce)


def imgpipe_path(source: str, request: Request, nonce: str) -> str:
    """imgproxy's grammar: resize fill WxH without enlarging, the quality, a cachebuster for
    a new nonce, the source in plain, the format as its extension."""
    extension = {"jpeg": "jpg"}.get(request.format, request.format)
    options = f"rs:fill:{request.width}:{request.height}:0/q:{request.quality}"
    if nonce:
        options += f"/cb:{nonce}"
    return f"/img/insecure/{options}/plain/{source}@{extension}"


def has_img_route(openapi: dict[str, object]) -> bool:
    paths = openapi.get("paths")
    return isinstance(paths, dict) and any(str(p).startswith("/img/") for p in paths)


def _get_json(server: Server, path: str) -> dict[str, object]:
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request("GET", path)
        answer: dict[str, object] = json.loads(conn.getresponse().read())
        return answer
    finally:
        conn.close()


def _upload(server: Server, files: list[Path]) -> list[str]:
    """Each file through POST /images, then waited for until PROCESSED (untimed: the upload's
    own renditions must not run during a pass); their imageIds, in order."""
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    ids: list[str] = []
    for file in files:
        body = e2e_bench._multipart(file.name, file.read_bytes())
        conn.request("POST", "/images", body=body, headers=e2e_bench.MULTIPART_HEADERS)
        response = conn.getresponse()
        answer = response.read()
        if response.status != 202:
            raise PeerUnavailable(f"POST /images answered {response.status}: {answer[:200]!r}")
        ids.append(str(json.loads(answer)["imageId"]))
    conn.close()
    deadline = time.monotonic() + 300
    for image_id in ids:
        while (status := _get_json(server, f"/images/{image_id}").get("status")) != "PROCESSED":
            if status == "FAILED" or time.monotonic() > deadline:
                raise PeerUnavailable(f"upload {image_id} not processed: {status}")
            time.sleep(0.2)
    return ids
