"""The adversarial corpus (tests/hostile.py) through the engine and through the service over
the real local wiring: every case ends exactly as expected, as a record, never a crash or a
hang; what is processed decodes (with Pillow) to upright, metadata-free renditions."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import hostile
from hostile import PROCESSED, Case
from imgpipe.bootstrap import LocalApp
from imgpipe.config import RenditionSpec, Settings
from imgpipe.core.errors import ImageError
from imgpipe.core.jobs import event_from_info
from imgpipe.core.model import Status
from imgpipe.engine import geometry, render

# A hang is a failure: no case may take long (the slowest, 1e8-pixel ones, take < 1 s).
pytestmark = pytest.mark.timeout(30)

CASES = hostile.corpus()
OPTIONS = Settings().render_options()
PIL_FORMAT = {"jpeg": "JPEG", "webp": "WEBP", "png": "PNG", "avif": "AVIF"}
MAX_MESSAGE = 300


def _is(colour: str, pixel: object) -> bool:
    """Roughly red or blue: CMYK and lossy encodings move colours a little, not that much."""
    red, green, blue = pixel  # type: ignore[misc]
    if colour == "red":
        return bool(red > 180 and green < 90 and blue < 90)
    return bool(blue > 180 and red < 90 and green < 90)


def _corner_points(width: int, height: int) -> dict[str, tuple[int, int]]:
    left, right, top, bottom = width // 8, width * 7 // 8, height // 8, height * 7 // 8
    return {"tl": (left, top), "tr": (right, top), "bl": (left, bottom), "br": (right, bottom)}


def check_rendition(
    case: Case, spec: RenditionSpec, fmt: str, size: tuple[int, int], data: bytes
) -> None:
    """What a user sees of one rendition: its format, size, no metadata, the right pixels."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert image.format == PIL_FORMAT[fmt], case.name
        assert image.size == size, case.name
        assert size[0] >= 1 and size[1] >= 1
        assert size[0] <= spec.width and size[1] <= spec.height
        assert not image.getexif(), f"{case.name}: EXIF left in {spec.name}.{fmt}"
        assert "exif" not in image.info and "icc_profile" not in image.info
        rgb = image.convert("RGB")
    points = _corner_points(*size)
    if case.red_corner == "all":
        for point in points.values():
            assert _is("red", rgb.getpixel(point)), (case.name, spec.name, fmt)
    elif case.red_corner is not None:
        for corner, point in points.items():
            want = "red" if corner == case.red_corner else "blue"
            assert _is(want, rgb.getpixel(point)), (case.name, spec.name, fmt, corner)
    if case.first_frame_red:
        centre = (size[0] // 2, size[1] // 2)
        assert _is("red", rgb.getpixel(centre)), (case.name, spec.name, fmt)


def expected_sizes(width: int, height: int) -> dict[str, tuple[int, int]]:
    return {
        spec.name: geometry.target_size(width, height, spec.width, spec.height, spec.fit)
        for spec in OPTIONS.renditions
    }


def check_message(case: Case, message: str) -> None:
    assert message, case.name
    assert "\n" not in message and "\r" not in message, (case.name, message)
    assert len(message) < MAX_MESSAGE, (case.name, message)
    assert message.isprintable(), (case.name, message)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_render_ends_as_expected(case: Case) -> None:
    # GIVEN a hostile file WHEN the engine renders it with the default options
    refusal: ImageError | None = None
    try:
        result = render(case.data, OPTIONS)
    except ImageError as exc:  # anything else is a crash, and fails the test as such
        refusal = exc
    if refusal is not None:
        # THEN a refusal is exactly the expected error, with a one-line readable message
        assert refusal.code == case.expected, f"{case.name}: {refusal.code}: {refusal}"
        check_message(case, str(refusal))
        return
    assert case.expected == PROCESSED, f"{case.name} was processed, not {case.expected}"
    meta = result.metadata
    if case.size is not None:
        assert (meta.width, meta.height) == case.size, case.name
    sizes = expected_sizes(meta.width, meta.height)
    specs = {spec.name: spec for spec in OPTIONS.renditions}
    produced = {(r.name, r.format) for r in result.renditions}
    assert produced == {(s.name, f) for s in OPTIONS.renditions for f in s.formats}
    for r in result.renditions:
        assert (r.width, r.height) == sizes[r.name], (case.name, r.name)
        check_rendition(case, specs[r.name], r.format, (r.width, r.height), r.data)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_service_records_the_expected_outcome(case: Case, local_app: LocalApp) -> None:
    # GIVEN a hostile file uploaded under its (possibly lying) name and content type
    service = local_app.service
    pending = service.ingest.upload(case.filename, case.data, case.content_type)
    assert pending.status is Status.PENDING
    info = local_app.objects.head(pending.key)
    assert info is not None
    # WHEN the service processes its event (as a worker does)
    record = service.processing.process(event_from_info(info))
    # THEN it ends in a terminal record with exactly the expected outcome
    assert record is not None
    assert record == service.queries.get(pending.image_id)
    if case.expected != PROCESSED:
        assert record.status is Status.FAILED, f"{case.name}: {record.status}"
        assert record.error is not None
        assert record.error.code == case.expected, f"{case.name}: {record.error}"
        check_message(case, record.error.message)
        assert record.renditions == []
        return
    assert record.status is Status.PROCESSED, f"{case.name}: {record.error}"
    assert record.width is not None and record.height is not None
    if case.size is not None:
        assert (record.width, record.height) == case.size, case.name
    sizes = expected_sizes(record.width, record.height)
    specs = {spec.name: spec for spec in OPTIONS.renditions}
    assert len(record.renditions) == sum(len(s.formats) for s in OPTIONS.renditions)
    for r in record.renditions:
        assert (r.width, r.height) == sizes[r.name], (case.name, r.name)
        data = local_app.objects.get(r.key)
        assert len(data) == r.bytes
        check_rendition(case, specs[r.name], r.format, (r.width, r.height), data)


def test_the_corpus_covers_what_the_issue_asks() -> None:
    names = {case.name for case in CASES}
    assert len(CASES) >= 40
    for required in (
        "png_deflate_bomb",
        "gif_frame_bomb",
        "tiff_page_bomb",
        "empty",
        "one_byte",
        "jpeg_plus_zip",
        "html_then_jpeg",
        "svg_as_jpeg",
        "mvg_as_jpeg",
        "pdf_as_jpeg",
        "cmyk_jpeg_adobe_inverted",
        "rgb16_png",
        "palette_trns_png",
        "one_pixel",
        "wide_10000x2",
        "tall_2x10000",
        "animated_gif",
        "animated_webp",
        "multipage_tiff",
        "exif_garbage_app1",
        "icc_garbage_iccp",
        *(f"exif_orientation_{o}" for o in range(1, 9)),
    ):
        assert required in names, required
    outcomes = {case.expected for case in CASES}
    assert outcomes == {
        PROCESSED,
        "unsupported_format",
        "corrupt_image",
        "too_large",
        "too_many_pixels",
        "too_many_frames",
    }


# --- peak memory -------------------------------------------------------------------------------

_RENDER_SCRIPT = """
import sys
from imgpipe.config import Settings
from imgpipe.core.errors import ImageError
from imgpipe.engine import render
from imgpipe.core.rendering import RenderOptions

data = open(sys.argv[1], "rb").read()
try:
    render(data, Settings().render_options())
except ImageError:
    pass
"""
# A tiny parent for the render: Linux carries the exec-ing process's RSS high-water mark into
# the child's ru_maxrss, so measured straight from pytest (hundreds of MB of corpus in
# memory) every child would look as big as pytest. From a ~10 MB parent, it is the render's.
_MEASURE_SCRIPT = """
import resource, subprocess, sys
subprocess.run([sys.executable, *sys.argv[1:]], check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""
# Generous: the worst case measured ~116 MB here (a 1e8-pixel RGB PNG, decoded row by row;
# a plain photo ~64 MB, a refused bomb ~46 MB).
PEAK_RSS_LIMIT_MB = 1024


def peak_rss_mb(path: Path, tmp_path: Path) -> float:
    """Peak RSS (MB) of rendering the file at `path` in a fresh interpreter."""
    script = tmp_path / "render_one.py"
    script.write_text(_RENDER_SCRIPT)
    env = {**os.environ, "VIPS_CONCURRENCY": "1"}
    measured = subprocess.run(
        [sys.executable, "-c", _MEASURE_SCRIPT, str(script), str(path)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return int(measured.stdout.strip()) / 1024  # ru_maxrss is in kB on Linux


@pytest.mark.timeout(60)
def test_peak_rss_of_the_worst_cases_is_bounded(tmp_path: Path) -> None:
    # GIVEN the cases that make a decoder work hardest, and a plain photo as a baseline
    baseline = tmp_path / "baseline.jpg"
    baseline.write_bytes(hostile.by_name("exif_orientation_1").data)
    peaks = {"baseline": peak_rss_mb(baseline, tmp_path)}
    for name in hostile.WORST:
        path = tmp_path / name
        path.write_bytes(hostile.by_name(name).data)
        # WHEN each is rendered alone in a fresh process
        peaks[name] = peak_rss_mb(path, tmp_path)
    # THEN none comes near a worker's memory budget
    worst = max(peaks, key=peaks.__getitem__)
    assert peaks[worst] < PEAK_RSS_LIMIT_MB, json.dumps(peaks)
    # and the refused bombs cost no more than a plain photo: nothing was decoded
    for name in ("png_deflate_bomb", "gif_frame_pixel_bomb"):
        assert peaks[name] < peaks["baseline"] + 20, json.dumps(peaks)
