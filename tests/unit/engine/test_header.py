"""Header checks and limits: what an original may be is decided from its magic bytes and its
header, before any pixel is decoded."""

from __future__ import annotations

import struct
import time

import pytest

import imagegen as gen
from engine_support import DEFAULTS, options
from imgpipe.config import Limits
from imgpipe.core.errors import (
    CorruptImageError,
    TooLargeError,
    TooManyFramesError,
    TooManyPixelsError,
    UnsupportedFormatError,
)
from imgpipe.engine import check_header, probe, render


def test_a_claimed_60000_square_jpeg_is_refused_from_its_header_fast() -> None:
    data = gen.claimed_size_jpeg(60000, 60000)
    assert len(data) < 1000
    for call in (
        lambda: check_header(data, Limits().render_limits()),
        lambda: probe(data, DEFAULTS),
        lambda: render(data, DEFAULTS),
    ):
        started = time.perf_counter()
        with pytest.raises(TooManyPixelsError, match="60000x60000"):
            call()
        assert time.perf_counter() - started < 0.5


def test_check_header_reads_size_and_frames() -> None:
    limits = DEFAULTS.limits
    assert check_header(gen.photo_jpeg(40, 30, orientation=6), limits) == ("jpeg", 30, 40, 1)
    assert check_header(gen.animated_gif(20, 10, frames=4), limits) == ("gif", 20, 10, 4)
    assert check_header(gen.heic(32, 16), limits) == ("heif", 32, 16, 1)


def test_pixel_limit_counts_frames() -> None:
    data = gen.animated_gif(40, 30, frames=3)  # 1,200 pixels a frame, 3,600 in all
    check_header(data, Limits(max_pixels=3600).render_limits())
    with pytest.raises(TooManyPixelsError, match="3 frames"):
        check_header(data, Limits(max_pixels=3000).render_limits())


def test_frame_limit() -> None:
    with pytest.raises(TooManyFramesError, match="3 frames"):
        render(gen.animated_gif(20, 20, frames=3), options(limits=Limits(max_frames=2)))


def test_byte_limit() -> None:
    data = gen.photo_jpeg(64, 64)
    with pytest.raises(TooLargeError):
        render(data, options(limits=Limits(max_bytes=len(data) - 1)))
    check_header(data, Limits(max_bytes=len(data)).render_limits())


@pytest.mark.parametrize("make", [gen.heic, gen.avif])
def test_a_heif_whose_ispe_box_understates_its_size_is_refused(make) -> None:
    # GIVEN a 256x192 HEIC/AVIF whose `ispe` box (what the header check reads) says 32x24,
    # the way a file would slip a large picture past max_pixels
    data = bytearray(make(256, 192))
    at = data.find(b"ispe")
    assert data.count(b"ispe") == 1 and struct.unpack(">II", data[at + 8 : at + 16]) == (256, 192)
    data[at + 8 : at + 16] = struct.pack(">II", 32, 24)
    assert check_header(bytes(data), DEFAULTS.limits)[1:3] == (32, 24)
    # WHEN it renders THEN libheif's own check refuses it: the decoded size is not the
    # signalled one (after the decode, so the decoder's memory and time follow the coded
    # size; the renderer's memory cap and time limit bound those)
    with pytest.raises(CorruptImageError, match="does not have the size signaled"):
        render(bytes(data), DEFAULTS)


def test_heic_pixel_limit_is_checked_before_decoding() -> None:
    with pytest.raises(TooManyPixelsError):
        render(gen.heic(64, 64), options(limits=Limits(max_pixels=64 * 64 - 1)))


def test_formats_not_allowed_by_config_are_refused() -> None:
    limits = Limits(allowed_formats=["jpeg"])
    with pytest.raises(UnsupportedFormatError, match="png"):
        render(gen.rgba_png(8, 8), options(limits=limits))
    render(gen.photo_jpeg(8, 8), options(limits=limits))


@pytest.mark.parametrize("data", [gen.SVG, gen.PDF, b"P6\n2 2\n255\n" + bytes(12), b""])
def test_svg_pdf_and_others_are_unsupported(data: bytes) -> None:
    for call in (check_header, lambda d, _: probe(d, DEFAULTS), lambda d, _: render(d, DEFAULTS)):
        with pytest.raises(UnsupportedFormatError):
            call(data, Limits())
