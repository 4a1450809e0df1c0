"""The writers: every output format, no metadata left in the outputs, and Pillow's encoders
writing the pixels libvips' own would."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import imagegen as gen
from engine_support import ALL_FORMATS, PIL_FORMAT, decoded, options
from imgpipe.config import RenditionSpec
from imgpipe.core.rendering import RenderResult
from imgpipe.engine import render


def test_outputs_carry_no_exif_xmp_or_icc(large_result: RenderResult) -> None:
    for rendition in large_result.renditions:
        image = decoded(rendition)
        assert "exif" not in image.info
        assert not image.getexif()
        assert "icc_profile" not in image.info
        assert "xmp" not in image.info
        assert b"Exif" not in rendition.data[:2048]
        assert b"http://ns.adobe.com/xap" not in rendition.data


def test_every_output_format_encodes_and_decodes() -> None:
    result = render(gen.photo_jpeg(120, 90), options(ALL_FORMATS))
    assert [r.format for r in result.renditions] == ["jpeg", "webp", "png", "avif"]
    for rendition in result.renditions:
        image = decoded(rendition)
        assert image.format == PIL_FORMAT[rendition.format]
        assert image.size == (64, 48)
        assert (
            rendition.ext
            == {"jpeg": "jpg", "webp": "webp", "png": "png", "avif": "avif"}[rendition.format]
        )


@pytest.mark.parametrize("orientation", [1, 6])
def test_pillow_and_libvips_encoders_write_the_same_pixels(orientation: int) -> None:
    """encoder="pillow" (the default) is only a faster writer: the same libjpeg-turbo and
    libwebp settings, so the decoded pixels are identical to libvips' own encoders, and the
    files differ by at most a few header bytes (JPEG) or not at all (WebP)."""
    data = gen.photo_jpeg(1200, 900, orientation=orientation)

    def encoded(encoder: str) -> dict[str, bytes]:
        spec = RenditionSpec(name="m", width=800, height=800, encoder=encoder)  # type: ignore[arg-type]
        return {r.ext: r.data for r in render(data, options(spec)).renditions}

    by_pillow, by_libvips = encoded("pillow"), encoded("libvips")
    assert by_pillow.keys() == by_libvips.keys() == {"jpg", "webp"}
    for ext, ours in by_pillow.items():
        theirs = by_libvips[ext]
        with Image.open(io.BytesIO(ours)) as a, Image.open(io.BytesIO(theirs)) as b:
            assert a.size == b.size == ((800, 600) if orientation == 1 else (600, 800))
            assert np.array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB")))
        assert abs(len(ours) - len(theirs)) <= 64, (ext, len(ours), len(theirs))
    assert by_pillow["webp"] == by_libvips["webp"]
