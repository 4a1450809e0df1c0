"""The cascade and its crops: rendition sizes for "inside" and "cover", never upscaled."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import imagegen as gen
from engine_support import DEFAULTS, close, decoded, options
from imgpipe.config import RenditionSpec
from imgpipe.engine import render


def test_a_small_image_is_never_upscaled() -> None:
    result = render(gen.photo_jpeg(100, 80), DEFAULTS)
    assert {(r.width, r.height) for r in result.renditions} == {(100, 80)}
    assert all(decoded(r).size == (100, 80) for r in result.renditions)


def test_cover_fills_the_box_with_the_centre() -> None:
    # GIVEN 400x200: a red, green, blue band left to right (green is the middle half)
    image = Image.new("RGB", (400, 200), (0, 255, 0))
    image.paste((255, 0, 0), (0, 0, 100, 200))
    image.paste((0, 0, 255), (300, 0, 400, 200))
    data = io.BytesIO()
    image.save(data, "PNG")
    spec = RenditionSpec(name="square", width=100, height=100, fit="cover", formats=["png"])
    # WHEN cropped to a 100x100 cover
    (square,) = render(data.getvalue(), options(spec)).renditions
    # THEN only the green middle is left, corner to corner
    out = decoded(square).convert("RGB")
    assert out.size == (100, 100)
    for corner in ((1, 1), (98, 1), (1, 98), (98, 98), (50, 50)):
        assert close(out.getpixel(corner), (0, 255, 0), 30)


def test_cover_never_upscales_a_narrow_source() -> None:
    spec = RenditionSpec(name="sq", width=256, height=256, fit="cover", formats=["jpeg"])
    (out,) = render(gen.photo_jpeg(100, 1000), options(spec)).renditions
    assert decoded(out).size == (100, 256)


def test_custom_rendition_boxes_and_quality() -> None:
    specs = (
        RenditionSpec(name="wide", width=300, height=100, formats=["jpeg"]),
        RenditionSpec(name="low", width=200, height=200, formats=["jpeg"], quality={"jpeg": 20}),
        RenditionSpec(name="high", width=200, height=200, formats=["jpeg"], quality={"jpeg": 95}),
    )
    result = render(gen.photo_jpeg(600, 450), options(*specs))
    sizes = {r.name: decoded(r).size for r in result.renditions}
    assert sizes == {"wide": (133, 100), "low": (200, 150), "high": (200, 150)}
    lengths = {r.name: len(r.data) for r in result.renditions}
    assert lengths["low"] < lengths["high"]


def test_a_smart_cover_keeps_the_subject_a_centred_one_cuts_off() -> None:
    # GIVEN a wide grey field whose only detail, a bright red patch, is near its right edge
    field = np.full((300, 900, 3), 128, np.uint8)
    field[130:170, 780:820] = np.random.default_rng(1).integers(0, 256, (40, 40, 3))
    field[142:158, 792:808] = (255, 30, 30)
    out = io.BytesIO()
    Image.fromarray(field).save(out, "PNG")

    def reds(gravity: str) -> int:
        spec = RenditionSpec(
            name="sq", width=200, height=200, fit="cover", gravity=gravity, formats=["png"]
        )
        (rendition,) = render(out.getvalue(), options(spec)).renditions
        pixels = np.asarray(decoded(rendition).convert("RGB")).astype(int)
        assert pixels.shape[:2] == (200, 200)
        return int(((pixels[..., 0] > 200) & (pixels[..., 1] < 90)).sum())

    # WHEN rendered as a 200x200 cover at the centre and smartly
    # THEN only the smart crop has the subject in it
    assert reds("centre") == 0
    assert reds("smart") > 20


def test_smart_gravity_needs_a_cover_to_crop() -> None:
    with pytest.raises(ValueError, match="gravity 'smart' needs fit = 'cover'"):
        RenditionSpec(name="sq", width=200, height=200, gravity="smart")
