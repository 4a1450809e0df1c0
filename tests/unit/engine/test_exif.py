"""EXIF: the record's curated subset, GPS only when kept (in the record and in renditions
that keep EXIF), and broken blocks read as far as they can be, never an error."""

from __future__ import annotations

import hashlib
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import imagegen as gen
from engine_support import DEFAULTS, decoded, options
from imgpipe.config import RenditionSpec
from imgpipe.engine import exif, parse_exif, probe, render


def test_exif_subset_without_gps_by_default(large_photo: bytes, large_result) -> None:
    metadata = large_result.metadata
    assert metadata.exif is not None
    exif = metadata.exif.model_dump(by_alias=True)
    assert exif == {
        "make": "Canon",
        "model": "Canon EOS R6",
        "lens": "RF24-105mm F4 L IS USM",
        "takenAt": "2024-05-17T14:03:22+02:00",
        "exposureTime": "1/250",
        "fNumber": 2.8,
        "iso": 400,
        "focalLength": 35.0,
        "gps": None,
    }
    assert metadata.sha256 == hashlib.sha256(large_photo).hexdigest()
    assert (metadata.content_type, metadata.format, metadata.color_space) == (
        "image/jpeg",
        "jpeg",
        "srgb",
    )
    assert (metadata.width, metadata.height, metadata.frames, metadata.orientation) == (
        2000,
        1500,
        1,
        1,
    )


def test_gps_only_when_configured() -> None:
    data = gen.photo_jpeg(64, 48, gps=True)
    assert probe(data, options()).exif.gps is None  # type: ignore[union-attr]
    gps = probe(data, options(keep_gps=True)).exif.gps  # type: ignore[union-attr]
    assert gps is not None
    assert math.isclose(gps["lat"], 48 + 51 / 60 + 30.24 / 3600, abs_tol=1e-6)
    assert math.isclose(gps["lon"], 2 + 17 / 60 + 40.2 / 3600, abs_tol=1e-6)
    assert gps["alt"] == 35.0


def test_renditions_keeping_exif_still_lose_gps_unless_configured() -> None:
    data = gen.photo_jpeg(64, 48, orientation=6, gps=True)
    spec = RenditionSpec(name="t", width=32, height=32, formats=["jpeg", "webp"])
    for keep_gps in (False, True):
        result = render(data, options(spec, strip_exif=False, keep_gps=keep_gps))
        for rendition in result.renditions:
            exif = decoded(rendition).getexif()
            assert exif.get(0x010F) == "Canon"
            assert exif.get(0x0112) in (None, 1)  # pixels are upright already
            assert bool(exif.get_ifd(0x8825)) is keep_gps


def test_heic_exif_is_read() -> None:
    metadata = probe(gen.heic(32, 32), DEFAULTS)
    assert metadata.exif is not None
    assert metadata.exif.model == "Canon EOS R6"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"Exif\x00\x00",
        b"Exif\x00\x00garbage",
        b"II*\x00\xff\xff\xff\xff",
        b"MM\x00*\x00\x00\x00\x08\x00\x05",
        gen.exif_bytes(gps=True)[:40],
        gen.exif_bytes(gps=True)[:-30],
    ],
)
def test_broken_exif_never_raises(raw: bytes) -> None:
    parse_exif(raw, keep_gps=True)


def test_partly_broken_exif_keeps_what_it_can_read() -> None:
    raw = gen.exif_bytes(gps=True)
    exif = parse_exif(raw[: len(raw) - 8], keep_gps=True)
    assert exif is not None
    assert exif.make == "Canon"


@given(st.binary(max_size=300))
def test_exif_fuzz_never_raises(raw: bytes) -> None:
    parse_exif(b"Exif\x00\x00II*\x00\x08\x00\x00\x00" + raw, keep_gps=True)


@pytest.mark.parametrize(
    ("original", "offset", "expected"),
    [
        ("2024:05:17 14:03:22", None, "2024-05-17T14:03:22"),
        (b"2024:05:17 14:03:22\x00", "+02:00", "2024-05-17T14:03:22+02:00"),
        ("2024:05:17 14:03:22", "+25:00", "2024-05-17T14:03:22"),  # no such offset
        ("2024:02:29 23:59:59", None, "2024-02-29T23:59:59"),  # a leap day
    ],
)
def test_taken_at_reads_exif_dates(original: object, offset: object, expected: str) -> None:
    assert exif.taken_at(original, offset) == expected


@pytest.mark.parametrize(
    "original",
    [
        "2023:02:29 10:00:00",  # no leap day that year
        "2024:13:01 10:00:00",
        "2024:05:17 24:00:00",
        "0000:00:00 00:00:00",  # what a camera with no clock writes
        "    :  :     :  :  ",
        "2024:5:17 14:03:22",  # EXIF pads with zeros
        "2024-05-17 14:03:22",
        "2024:05:17T14:03:22",
        "2024:05:17 14:03:2\u0662",  # a non-ASCII digit
        "2024:05:17 +4:03:22",
    ],
)
def test_taken_at_refuses_what_is_not_an_exif_date(original: str) -> None:
    with pytest.raises(ValueError, match=r"numbers of|out of range|must be in"):
        exif.taken_at(original, None)


def test_exposure_formats() -> None:
    from PIL.TiffImagePlugin import IFDRational

    assert exif.exposure(IFDRational(1, 250)) == "1/250"
    assert exif.exposure(IFDRational(10, 2500)) == "1/250"
    assert exif.exposure(IFDRational(2, 1)) == "2"
    assert exif.exposure(IFDRational(1, 2)) == "1/2"
    assert exif.exposure(IFDRational(3, 10)) == "0.3"
    assert exif.exposure(IFDRational(1, 0)) is None
