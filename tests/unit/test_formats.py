"""Format sniffing: by magic bytes, naming what a refused file looks like."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

import imagegen as gen
from imgpipe.core.errors import UnsupportedFormatError
from imgpipe.core.formats import CONTENT_TYPES, content_type, sniff


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + b"\x00\x00\x00\x08mdat"


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: gen.photo_jpeg(16, 16), "jpeg"),
        (lambda: gen.rgba_png(8, 8), "png"),
        (lambda: gen.webp(8, 8), "webp"),
        (lambda: gen.animated_gif(8, 8), "gif"),
        (lambda: gen.tiff(8, 8), "tiff"),
        (lambda: gen.avif(8, 8), "avif"),
        (lambda: gen.heic(16, 16), "heif"),
    ],
)
def test_sniffs_every_accepted_format_made_by_real_encoders(make, expected) -> None:
    assert sniff(make()) == expected


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xdb", "jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "png"),
        (b"GIF87a\x01\x00", "gif"),
        (b"GIF89a\x01\x00", "gif"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8L", "webp"),
        (b"II*\x00\x08\x00\x00\x00", "tiff"),
        (b"MM\x00*\x00\x00\x00\x08", "tiff"),
        (b"II+\x00\x08\x00\x00\x00", "tiff"),  # BigTIFF
        (b"MM\x00+\x00\x08\x00\x00", "tiff"),
        (ftyp(b"avif", b"mif1", b"miaf"), "avif"),
        (ftyp(b"avis", b"msf1"), "avif"),
        (ftyp(b"mif1", b"avif", b"miaf"), "avif"),
        (ftyp(b"heic", b"mif1", b"heic"), "heif"),
        (ftyp(b"heix"), "heif"),
        (ftyp(b"hevc", b"msf1"), "heif"),
        (ftyp(b"mif1", b"heic"), "heif"),
        (ftyp(b"msf1"), "heif"),
        (ftyp(b"isom", b"avif"), "avif"),
        (ftyp(b"isom", b"heic"), "heif"),
    ],
)
def test_sniffs_by_magic_bytes(head: bytes, expected: str) -> None:
    assert sniff(head) == expected


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (gen.SVG, "SVG"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
        (b"\xef\xbb\xbf  \n<svg width='1' height='1'></svg>", "SVG"),
        (b"<!DOCTYPE svg PUBLIC '-//W3C//DTD SVG 1.1//EN'><svg/>", "SVG"),
        (b"<?xml version='1.0'?><root/>", "XML"),
        (b"<!doctype html><html></html>", "HTML"),
        (gen.PDF, "PDF"),
        (b"8BPS\x00\x01\x00\x00\x00\x00\x00\x00", "PSD"),
        (b"BM6\x00\x00\x00\x00\x00\x00\x006\x00\x00\x00", "BMP"),
        (b"\x00\x00\x01\x00\x01\x00\x10\x10\x00\x00", "ICO"),
        (b"\x76\x2f\x31\x01\x02\x00\x00\x00", "EXR"),
        (b"SIMPLE  =                    T", "FITS"),
        (b"\x08\xf2\xa6\xb6\x00\x00\x00\x00", "libvips"),
        (b"P6\n64 48\n255\n\x00\x00\x00", "PPM"),
        (b"P5\n4 4\n255\n\x00", "PGM"),
        (b"push graphic-context\nviewbox 0 0 10 10\n", "MVG"),
        (b"viewbox 0 0 10 10\nfill red\n", "MVG"),
        (b"hello, this is just some text\n", "text"),
        (ftyp(b"isom", b"mp41"), "ftyp brand 'isom'"),
        (ftyp(b"qt  "), "ftyp brand 'qt  '"),
        (b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d", "unknown"),
        (b"\x00\x00\x00\x00", "zero bytes"),
        (b"", "empty"),
        (b"\x13", "too short"),
    ],
)
def test_refuses_other_formats_naming_what_it_saw(data: bytes, named: str) -> None:
    with pytest.raises(UnsupportedFormatError) as raised:
        sniff(data)
    assert named.lower() in str(raised.value).lower()
    assert raised.value.code == "unsupported_format"


def test_a_jpeg_named_svg_is_still_a_jpeg_and_an_svg_named_jpeg_is_refused() -> None:
    # GIVEN the bytes alone decide (there is no file name to pass, by design)
    # THEN a JPEG is a JPEG and SVG text is refused whatever its name would have been
    assert sniff(gen.photo_jpeg(8, 8)) == "jpeg"
    with pytest.raises(UnsupportedFormatError):
        sniff(gen.SVG)


@given(st.binary(max_size=256))
def test_sniff_answers_a_format_or_refuses_never_crashes(data: bytes) -> None:
    try:
        fmt = sniff(data)
    except UnsupportedFormatError as exc:
        message = str(exc)
        fmt = None
    else:
        message = ""
    assert fmt in CONTENT_TYPES or message


@given(st.binary(min_size=0, max_size=64))
def test_a_truncated_ftyp_box_never_crashes(tail: bytes) -> None:
    data = b"\xff\xff\xff\xffftyp" + tail
    with contextlib.suppress(UnsupportedFormatError):
        sniff(data)


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [
        ("jpeg", "image/jpeg"),
        ("png", "image/png"),
        ("webp", "image/webp"),
        ("gif", "image/gif"),
        ("tiff", "image/tiff"),
        ("avif", "image/avif"),
        ("heif", "image/heif"),
    ],
)
def test_content_type_of_each_format(fmt: str, mime: str) -> None:
    assert content_type(fmt) == mime
