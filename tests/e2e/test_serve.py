"""End to end: `imgpipe serve` as a user runs it, driven over HTTP, outputs decoded by Pillow."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import imagegen
from liveserver import (
    IMGPIPE,
    TERMINAL,
    Server,
    start_server,
    stop,
    upload_multipart,
    upload_presigned,
    wait_terminal,
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = start_server(tmp_path / "data", tmp_path / "serve.log")
    yield s
    stop(s)


def side_colour(im: Image.Image, side: str) -> tuple[int, int, int]:
    w, h = im.size
    x, y = {
        "top": (w // 2, h // 8),
        "bottom": (w // 2, h * 7 // 8),
        "left": (w // 8, h // 2),
        "right": (w * 7 // 8, h // 2),
    }[side]
    r, g, b = im.convert("RGB").getpixel((x, y))  # type: ignore[misc]
    return r, g, b


RED_SIDE = {1: "top", 3: "bottom", 6: "right", 8: "left"}


@pytest.mark.slow
def test_phone_photos_by_both_routes_end_upright_without_exif(server: Server) -> None:
    # GIVEN photos with EXIF orientations 1, 3, 6, 8, uploaded by both routes
    with server.client() as client:
        uploads: dict[str, int] = {}
        for orientation in (1, 3, 6, 8):
            data = imagegen.two_tone_jpeg(640, 480, orientation)
            uploads[upload_multipart(client, f"o{orientation}.jpg", data, "image/jpeg")] = (
                orientation
            )
            uploads[upload_presigned(client, f"p{orientation}.jpg", data, "image/jpeg")] = (
                orientation
            )
        # WHEN the server has processed them
        records = wait_terminal(client, list(uploads))
        # THEN every rendition decodes, at the recorded size and format, upright, EXIF-free
        for image_id, orientation in uploads.items():
            record = records[image_id]
            assert record["status"] == "PROCESSED", record
            upright = (640, 480) if orientation in (1, 3) else (480, 640)
            assert (record["width"], record["height"]) == upright
            assert len(record["renditions"]) == 6
            for r in record["renditions"]:
                got = client.get(r["url"])
                assert got.status_code == 200
                with Image.open(io.BytesIO(got.content)) as im:
                    assert im.format == {"jpeg": "JPEG", "webp": "WEBP"}[r["format"]]
                    assert im.size == (r["width"], r["height"])
                    assert max(im.size) == min(
                        max(upright), {"thumb": 256, "medium": 800, "large": 1600}[r["name"]]
                    )
                    assert not im.getexif(), "EXIF left in a rendition"
                    assert "icc_profile" not in im.info and "xmp" not in im.info
                    red, _, blue = side_colour(im, RED_SIDE[orientation])
                    assert red > 200 and blue < 60, (orientation, r["name"])


@pytest.mark.slow
def test_file_dropped_into_uploads_folder_is_processed(server: Server) -> None:
    # GIVEN a running server WHEN a photo is copied into its uploads folder
    folder = server.data_dir / "uploads" / "camera roll"
    folder.mkdir(parents=True)
    tmp = server.data_dir / "incoming.tmp"
    tmp.write_bytes(imagegen.photo_jpeg(800, 600))
    shutil.move(str(tmp), folder / "IMG 0001.jpg")
    # THEN it appears as a record and ends PROCESSED
    with server.client() as client:
        deadline = time.monotonic() + 60
        items: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not items:
            items = client.get("/images").json()["items"]
            time.sleep(0.2)
        assert [i["key"] for i in items] == ["uploads/camera roll/IMG 0001.jpg"]
        record = wait_terminal(client, [items[0]["imageId"]])[items[0]["imageId"]]
        assert record["status"] == "PROCESSED"
        # AND removing the file removes its renditions and record
        (folder / "IMG 0001.jpg").unlink()
        deadline = time.monotonic() + 30
        while (
            time.monotonic() < deadline
            and client.get(f"/images/{record['imageId']}").status_code != 404
        ):
            time.sleep(0.2)
        assert client.get(f"/images/{record['imageId']}").status_code == 404
        assert not (server.data_dir / "renditions" / record["imageId"]).exists()


@pytest.mark.slow
def test_kill_9_mid_processing_loses_nothing(tmp_path: Path) -> None:
    # GIVEN a server with uploads in flight
    data_dir, log = tmp_path / "data", tmp_path / "serve.log"
    server = start_server(data_dir, log)
    ids: list[str] = []
    try:
        with server.client() as client:
            for n in range(12):
                data = imagegen.photo_jpeg(2400, 1800) if n % 4 else imagegen.truncated_jpeg()
                ids.append(upload_multipart(client, f"{n}.jpg", data, "image/jpeg"))
            # wait until processing has started but not finished
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                statuses = [client.get(f"/images/{i}").json()["status"] for i in ids]
                if "PROCESSING" in statuses or any(s in TERMINAL for s in statuses):
                    break
                time.sleep(0.05)
    finally:
        # WHEN it is killed with no chance to clean up (rendering children included)
        children = subprocess.run(
            ["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(10)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    unfinished = [i for i, s in zip(ids, statuses, strict=True) if s not in TERMINAL]
    assert unfinished, "the kill came too late to test anything"

    # THEN after a restart every upload ends PROCESSED or FAILED, and the bad ones FAILED
    restarted = start_server(data_dir, log)
    try:
        with restarted.client() as client:
            records = wait_terminal(client, ids, timeout_s=180)
        for n, image_id in enumerate(ids):
            expected = "PROCESSED" if n % 4 else "FAILED"
            assert records[image_id]["status"] == expected, records[image_id]
        assert client is not None
    finally:
        stop(restarted)


def test_refuses_public_bind_without_token(tmp_path: Path) -> None:
    result = subprocess.run(
        [*IMGPIPE, "serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "API token" in result.stderr
