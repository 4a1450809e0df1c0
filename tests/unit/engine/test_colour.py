"""Colour: outputs are 8-bit sRGB (grey stays grey) without a profile, and JPEG flattens alpha
onto the background."""

from __future__ import annotations

import io

import pytest
from PIL import Image

import imagegen as gen
from engine_support import ALL_FORMATS, close, decoded, options
from imgpipe.engine import render


@pytest.mark.parametrize("make", [gen.rgba_png, gen.palette_png])
def test_jpeg_flattens_alpha_onto_the_background_others_keep_it(make) -> None:
    background = (10, 20, 200)
    result = render(make(80, 40), options(ALL_FORMATS, background=background))
    assert result.metadata.has_alpha
    for rendition in result.renditions:
        out = decoded(rendition)
        if rendition.format == "jpeg":
            assert out.mode == "RGB"
            assert close(out.getpixel((8, 16)), gen.RED, 12)
            assert close(out.getpixel((56, 16)), background, 12)
        else:
            rgba = out.convert("RGBA")
            assert rgba.getpixel((8, 16))[3] == 255
            assert rgba.getpixel((56, 16))[3] == 0


def test_cmyk_comes_out_rgb_with_roughly_the_right_colour() -> None:
    result = render(gen.cmyk_jpeg(40, 40), options(ALL_FORMATS))
    assert result.metadata.color_space == "cmyk"
    for rendition in result.renditions:
        out = decoded(rendition)
        assert out.mode in ("RGB", "RGBA")
        red, green, blue = out.convert("RGB").getpixel((20, 20))[:3]
        assert red > 180
        assert green < 90
        assert blue < 90


def test_16_bit_rgb_becomes_8_bit() -> None:
    result = render(gen.rgb16_png(30, 20), options(ALL_FORMATS))
    assert result.metadata.color_space == "rgb16"
    for rendition in result.renditions:
        out = decoded(rendition)
        assert out.mode in ("RGB", "RGBA")
        assert close(out.convert("RGB").getpixel((15, 10)), (255, 128, 0), 6)


def test_16_bit_grey_becomes_8_bit_grey() -> None:
    result = render(gen.grey16_png(64, 16), options(ALL_FORMATS))
    assert result.metadata.color_space == "grey16"
    jpeg = decoded(result.renditions[0])
    assert jpeg.mode == "L"
    assert jpeg.getpixel((1, 8)) < 20
    assert jpeg.getpixel((62, 8)) > 235
    for rendition in result.renditions[1:]:
        out = decoded(rendition).convert("L")
        assert out.getpixel((1, 8)) < 20
        assert out.getpixel((62, 8)) > 235


def test_greyscale_jpeg() -> None:
    result = render(gen.grey_jpeg(50, 30), options(ALL_FORMATS))
    assert result.metadata.color_space == "b-w"
    assert not result.metadata.has_alpha
    assert decoded(result.renditions[0]).mode == "L"


@pytest.mark.parametrize("make", [gen.p3_png, gen.p3_heic])
def test_icc_tagged_images_are_converted_to_srgb(make) -> None:
    # GIVEN Display P3 pixels that mean sRGB (0, 200, 0); read as if sRGB they would be
    # roughly (90, 197, 58)
    raw = Image.open(io.BytesIO(gen.p3_png(24, 24, (0, 200, 0)))).getpixel((5, 5))
    assert not close(raw, (0, 200, 0), 30)
    data = make(24, 24, (0, 200, 0))
    # WHEN rendered THEN the outputs show the sRGB colour and carry no profile
    result = render(data, options(ALL_FORMATS))
    for rendition in result.renditions:
        out = decoded(rendition)
        assert "icc_profile" not in out.info
        assert close(out.convert("RGB").getpixel((5, 5)), (0, 200, 0), 10)
