"""The `imgpipe` command as a user runs it: process, info, backfill, redrive, --version."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import imagegen
from imgpipe import __version__

IMGPIPE = [sys.executable, "-m", "imgpipe.entrypoints.cli"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*IMGPIPE, *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    (folder / "nested").mkdir(parents=True)
    (folder / "beach.jpg").write_bytes(imagegen.photo_jpeg(1800, 1200, orientation=6))
    (folder / "nested" / "beach.png").write_bytes(imagegen.rgba_png(300, 200))
    (folder / "logo.svg").write_bytes(b"<svg xmlns='http://www.w3.org/2000/svg'/>")
    (folder / "cut.jpg").write_bytes(imagegen.truncated_jpeg())
    (folder / ".hidden.jpg").write_bytes(imagegen.photo_jpeg(10, 10))
    return folder


def test_version_and_help() -> None:
    assert run("--version").stdout.strip() == f"imgpipe {__version__}"
    for command in ("serve", "process", "info", "backfill", "redrive", "reprocess"):
        result = run(command, "--help")
        assert result.returncode == 0, result.stderr
        assert "Usage" in result.stdout


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_process_writes_renditions_and_names_failures(
    photos: Path, tmp_path: Path, jobs: str
) -> None:
    out = tmp_path / f"out{jobs}"
    # WHEN a folder with two good images and two bad ones is processed
    result = run("process", str(photos), "--out", str(out), "--jobs", jobs)
    # THEN the exit code says something failed, and the summary names each failure and why
    assert result.returncode == 1, result.stderr
    assert "2 processed" in result.stdout and "2 failed" in result.stdout
    assert "logo.svg" in result.stdout and "unsupported_format" in result.stdout
    assert "cut.jpg" in result.stdout and "corrupt_image" in result.stdout
    # AND good images have six renditions plus record.json; same stems do not collide
    assert sorted(p.name for p in out.iterdir()) == ["beach", "beach-2", "cut", "logo"]
    record = json.loads((out / "beach" / "record.json").read_text())
    assert record["status"] == "PROCESSED"
    assert (record["width"], record["height"]) == (1200, 1800)
    for r in record["renditions"]:
        with Image.open(out / "beach" / r["url"]) as im:
            assert im.size == (r["width"], r["height"])
            assert not im.getexif()
    assert {r["name"] for r in record["renditions"]} == {"thumb", "medium", "large"}
    failed = json.loads((out / "logo" / "record.json").read_text())
    assert failed["status"] == "FAILED" and failed["error"]["code"] == "unsupported_format"


def test_process_json_is_one_document(photos: Path, tmp_path: Path) -> None:
    result = run("process", str(photos / "beach.jpg"), "--out", str(tmp_path / "o"), "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["processed"] == 1 and doc["failed"] == 0
    assert doc["records"][0]["status"] == "PROCESSED"


def test_process_with_a_config_file(photos: Path, tmp_path: Path) -> None:
    config = tmp_path / "imgpipe.toml"
    config.write_text(
        '[[renditions]]\nname = "square"\nwidth = 100\nheight = 100\n'
        'fit = "cover"\nformats = ["webp"]\n'
    )
    result = run(
        "process",
        str(photos / "beach.jpg"),
        "--out",
        str(tmp_path / "o"),
        "--config",
        str(config),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    [rendition] = json.loads(result.stdout)["records"][0]["renditions"]
    assert (rendition["name"], rendition["format"]) == ("square", "webp")
    with Image.open(tmp_path / "o" / "beach" / "square.webp") as im:
        assert im.size == (100, 100)
    bad = run(
        "process",
        str(photos),
        "--out",
        str(tmp_path / "x"),
        "--config",
        str(tmp_path / "missing.toml"),
    )
    assert bad.returncode == 2 and "config file not found" in bad.stderr


def test_info_reads_metadata_without_writing(photos: Path) -> None:
    result = run("info", str(photos / "beach.jpg"), "--json")
    assert result.returncode == 0, result.stderr
    meta = json.loads(result.stdout)
    assert meta["format"] == "jpeg" and meta["orientation"] == 6
    assert (meta["width"], meta["height"]) == (1200, 1800)
    assert meta["exif"]["model"] == "Canon EOS R6"
    assert len(meta["sha256"]) == 64 and len(meta["phash"]) == 16
    refused = run("info", str(photos / "logo.svg"), "--json")
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["error"]["code"] == "unsupported_format"
    table = run("info", str(photos / "nested" / "beach.png"))
    assert table.returncode == 0 and "hasAlpha" in table.stdout
    assert run("info", str(photos / "nope.jpg")).returncode == 2


def test_backfill_and_redrive_on_a_data_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "uploads" / "old").mkdir(parents=True)
    (data / "uploads" / "old" / "a.jpg").write_bytes(imagegen.photo_jpeg(64, 64))
    (data / "uploads" / "old" / "b.jpg").write_bytes(imagegen.photo_jpeg(64, 64))
    result = run("backfill", "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    assert "queued 2 object(s)" in result.stdout
    assert "moved 0 dead-lettered job(s)" in run("redrive", "--data-dir", str(data)).stdout


def test_redrive_makes_dead_webhook_deliveries_due_again(tmp_path: Path) -> None:
    from imgpipe.adapters.local.webhook_outbox import SqliteWebhookOutbox

    db = tmp_path / "data" / ".imgpipe" / "imgpipe.db"
    outbox = SqliteWebhookOutbox(db)
    try:
        outbox.add("img-1", "image.processed", ["http://127.0.0.1:9/hook"], b"{}", now=0.0)
        delivery = outbox.claim(now=1.0, lease_s=30.0)
        assert delivery is not None
        outbox.dead(delivery.seq, attempts=8, error="HTTP 500")
        assert outbox.counts()["dead"] == 1
    finally:
        outbox.close()

    result = run("redrive", "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 0, result.stderr
    assert "made 1 dead webhook delivery(ies) due again" in result.stdout

    outbox = SqliteWebhookOutbox(db)
    try:
        assert outbox.counts() == {"pending": 1, "dead": 0}
    finally:
        outbox.close()


def test_decoded_outputs_match_source_pixels(photos: Path, tmp_path: Path) -> None:
    """Renditions are the image, not just the right size: compare against Pillow's resize."""
    out = tmp_path / "o"
    assert run("process", str(photos / "nested" / "beach.png"), "--out", str(out)).returncode == 0
    with Image.open(photos / "nested" / "beach.png") as src:
        reference = src.convert("RGBA").resize((256, 171), Image.Resampling.LANCZOS)
    with Image.open(io.BytesIO((out / "beach" / "thumb.webp").read_bytes())) as im:
        got = np.asarray(im.convert("RGBA"), dtype=np.int16)
    expected = np.asarray(reference, dtype=np.int16)
    assert got.shape == expected.shape
    assert np.abs(got - expected).mean() < 6  # mean absolute error per channel, lossy WebP
