"""`imgpipe reprocess --stale` on a data folder, as a user runs it: change the presets in the
config file, run the command, and only what changed is written (or deleted)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import imagegen
from conftest import drain
from imgpipe.bootstrap import build_local
from imgpipe.config import Settings, load_settings
from imgpipe.core.model import ImageRecord, Status
from imgpipe.engine import InProcessRenderer
from liveserver import start_server, stop

IMGPIPE = [sys.executable, "-m", "imgpipe.entrypoints.cli"]

THUMB = '[[renditions]]\nname = "thumb"\nwidth = 96\nheight = 96\n'
MEDIUM = '[[renditions]]\nname = "medium"\nwidth = 240\nheight = 240\n'
THUMB95 = THUMB + "quality = { jpeg = 95, webp = 80 }\n"
SMALL = '[[renditions]]\nname = "small"\nwidth = 160\nheight = 160\nformats = ["webp"]\n'
COMMON = "[server]\nworkers = 1\nwatch_uploads = false\n\n[limits]\nprocessing_timeout_s = 60\n"


def write_config(path: Path, *presets: str) -> Path:
    path.write_text(COMMON + "\n" + "\n".join(presets))
    return path


def imgpipe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*IMGPIPE, *args], capture_output=True, text=True, timeout=180, check=False
    )


def settings_of(config: Path, data: Path) -> Settings:
    return load_settings(config, local={"data_dir": data})


def records(data: Path, config: Path) -> list[ImageRecord]:
    app = build_local(settings_of(config, data), with_workers=False)
    try:
        return app.records.list(None, 100, None).items
    finally:
        app.stop()


def files(data: Path) -> dict[str, tuple[int, bytes]]:
    """Every rendition file: its modification time (ns) and bytes."""
    return {
        str(p.relative_to(data)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted((data / "renditions").rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data folder with three photos processed with thumb and medium."""
    folder = tmp_path / "data"
    for n, (w, h) in enumerate([(640, 480), (480, 640), (500, 500)]):
        original = folder / "uploads" / f"p{n}" / "photo.jpg"
        original.parent.mkdir(parents=True)
        original.write_bytes(imagegen.photo_jpeg(w, h))
    config = write_config(tmp_path / "before.toml", THUMB, MEDIUM)
    app = build_local(settings_of(config, folder), renderer=InProcessRenderer(), with_workers=False)
    try:
        assert app.service.maintenance.backfill() == 3
        assert drain(app) == 3
    finally:
        app.stop()
    assert all(r.status is Status.PROCESSED for r in records(folder, config))
    return folder


def test_added_changed_and_removed_presets(data: Path, tmp_path: Path) -> None:
    before = files(data)
    assert len(before) == 3 * 4  # thumb and medium, JPEG and WebP

    # GIVEN a config that adds the "small" preset
    added = write_config(tmp_path / "added.toml", THUMB, MEDIUM, SMALL)
    # WHEN `imgpipe reprocess --stale` runs (no server: it works the jobs off itself)
    result = imgpipe("reprocess", "--stale", "--data-dir", str(data), "--config", str(added))
    # THEN it names what it did
    assert result.returncode == 0, result.stderr
    assert "checked 3 processed record(s): 3 stale, queued 3 re-render job(s)" in result.stdout
    assert "re-rendered 3, failed 0, gone 0, still stale 0" in result.stdout
    # AND only small.webp was written: every other file has its old bytes and mtime
    after = files(data)
    assert {k: v for k, v in after.items() if k in before} == before
    new = sorted(set(after) - set(before))
    assert len(new) == 3 and all(k.endswith("/small.webp") for k in new)
    for k in new:
        with Image.open(io.BytesIO(after[k][1])) as im:
            assert im.format == "WEBP" and max(im.size) == 160
    # AND every record carries the new hash and lists small
    want = settings_of(added, data).rendition_hash()
    for record in records(data, added):
        assert record.status is Status.PROCESSED and record.rendition_hash == want
        assert [r.name for r in record.renditions] == ["thumb"] * 2 + ["medium"] * 2 + ["small"]

    # WHEN it runs again THEN nothing is stale and nothing is queued
    again = imgpipe("reprocess", "--stale", "--data-dir", str(data), "--config", str(added))
    assert again.returncode == 0, again.stderr
    assert "3 processed record(s): 0 stale, queued 0 re-render job(s)" in again.stdout
    assert files(data) == after

    # GIVEN thumb's JPEG quality is changed
    sharper = write_config(tmp_path / "sharper.toml", THUMB95, MEDIUM, SMALL)
    result = imgpipe("reprocess", "--stale", "--data-dir", str(data), "--config", str(sharper))
    assert result.returncode == 0, result.stderr
    # THEN only thumb's files were written again
    later = files(data)
    changed = {k for k in after if later[k][0] != after[k][0]}
    assert changed == {k for k in after if "/thumb." in k}
    assert all(later[k][1] != after[k][1] for k in changed if k.endswith(".jpg"))

    # GIVEN medium is removed from the config
    fewer = write_config(tmp_path / "fewer.toml", THUMB95, SMALL)
    result = imgpipe("reprocess", "--stale", "--data-dir", str(data), "--config", str(fewer))
    assert result.returncode == 0, result.stderr
    # THEN its files are gone, nothing else was touched
    final = files(data)
    assert set(final) == {k for k in later if "/medium." not in k}
    assert all(final[k] == later[k] for k in final)
    for record in records(data, fewer):
        assert {r.name for r in record.renditions} == {"thumb", "small"}


def test_a_running_server_works_the_jobs_off(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN `imgpipe serve` running on the data folder with the new config
    added = write_config(tmp_path / "added.toml", THUMB, MEDIUM, SMALL)
    monkeypatch.setenv("IMGPIPE_CONFIG", str(added))
    server = start_server(data, tmp_path / "serve.log", workers=1)
    try:
        # WHEN `reprocess --stale` runs THEN the server's workers re-render, the command waits
        result = imgpipe("reprocess", "--stale", "--data-dir", str(data), "--config", str(added))
        assert result.returncode == 0, result.stderr + (tmp_path / "serve.log").read_text()
        assert "queued 3 re-render job(s)" in result.stdout
        assert "re-rendered 3, failed 0, gone 0, still stale 0" in result.stdout
        with server.client() as client:
            items = client.get("/images").json()["items"]
        want = settings_of(added, data).rendition_hash()
        assert [i["renditionHash"] for i in items] == [want] * 3
        assert all(i["status"] == "PROCESSED" for i in items)
    finally:
        stop(server)


def test_no_wait_only_queues_and_bad_usage(data: Path, tmp_path: Path) -> None:
    added = write_config(tmp_path / "added.toml", THUMB, SMALL)
    result = imgpipe(
        "reprocess", "--stale", "--no-wait", "--data-dir", str(data), "--config", str(added)
    )
    assert result.returncode == 0, result.stderr
    assert "queued 3 re-render job(s)" in result.stdout and "re-rendered" not in result.stdout
    # nothing ran: the records are still stale (a later `imgpipe serve` runs the jobs)
    want = settings_of(added, data).rendition_hash()
    assert all(r.rendition_hash != want for r in records(data, added))
    assert imgpipe("reprocess", "--data-dir", str(data)).returncode == 2


def test_process_records_carry_the_hashes(tmp_path: Path) -> None:
    photo = tmp_path / "p.jpg"
    photo.write_bytes(imagegen.photo_jpeg(300, 200))
    result = imgpipe("process", str(photo), "--out", str(tmp_path / "out"), "--json")
    assert result.returncode == 0, result.stderr
    [record] = json.loads(result.stdout)["records"]
    assert record["renditionHash"] == Settings().rendition_hash()
    hashes = Settings().spec_hashes()
    assert all(r["specHash"] == hashes[r["name"]] for r in record["renditions"])
