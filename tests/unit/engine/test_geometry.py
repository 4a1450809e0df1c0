"""Rendition geometry: sizes for "inside" and "cover", orientation swaps, rounding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imgpipe.engine.geometry import (
    centre_crop,
    cover_resize_size,
    inside_size,
    oriented_size,
    resize_size,
    target_size,
)

sides = st.integers(min_value=1, max_value=40_000)
boxes = st.integers(min_value=1, max_value=16_384)


@pytest.mark.parametrize(
    ("orientation", "expected"),
    [(1, (400, 300)), (2, (400, 300)), (3, (400, 300)), (4, (400, 300))]
    + [(o, (300, 400)) for o in (5, 6, 7, 8)]
    + [(0, (400, 300)), (9, (400, 300))],
)
def test_orientations_5_to_8_swap_width_and_height(orientation: int, expected) -> None:
    assert oriented_size(400, 300, orientation) == expected


@pytest.mark.parametrize(
    ("src", "box", "expected"),
    [
        ((4000, 3000), (1600, 1600), (1600, 1200)),
        ((4000, 3000), (800, 800), (800, 600)),
        ((4000, 3000), (256, 256), (256, 192)),
        ((3000, 4000), (256, 256), (192, 256)),
        ((100, 80), (256, 256), (100, 80)),  # never upscaled
        ((1000, 333), (256, 256), (256, 85)),  # 85.248 rounds down
        ((1000, 334), (256, 256), (256, 86)),  # 85.504 rounds up
        ((1000, 1000), (300, 200), (200, 200)),
        ((20000, 1), (256, 256), (256, 1)),  # never below 1 px
        ((1, 20000), (256, 256), (1, 256)),
        ((300, 100), (300, 50), (150, 50)),
        ((500, 100), (256, 1000), (256, 51)),
    ],
)
def test_inside_examples(src, box, expected) -> None:
    assert target_size(*src, *box, "inside") == expected
    assert resize_size(*src, *box, "inside") == expected


@pytest.mark.parametrize(
    ("src", "box", "resized", "target"),
    [
        ((4000, 3000), (256, 256), (341, 256), (256, 256)),
        ((3000, 4000), (256, 256), (256, 341), (256, 256)),
        ((400, 200), (100, 100), (200, 100), (100, 100)),
        ((100, 1000), (256, 256), (100, 1000), (100, 256)),  # narrower than the box
        ((1000, 100), (256, 256), (1000, 100), (256, 100)),
        ((300, 1000), (256, 256), (256, 853), (256, 256)),
        ((50, 40), (256, 256), (50, 40), (50, 40)),  # smaller on both sides
        ((1600, 900), (400, 400), (711, 400), (400, 400)),
    ],
)
def test_cover_examples(src, box, resized, target) -> None:
    assert cover_resize_size(*src, *box) == resized
    assert resize_size(*src, *box, "cover") == resized
    assert target_size(*src, *box, "cover") == target


def test_sizes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        inside_size(0, 10, 10, 10)
    with pytest.raises(ValueError, match="positive"):
        cover_resize_size(10, 10, -1, 10)


@given(sides, sides, boxes, boxes)
def test_inside_fits_the_box_and_is_never_upscaled(src_w, src_h, box_w, box_h) -> None:
    width, height = target_size(src_w, src_h, box_w, box_h, "inside")
    assert 1 <= width <= min(src_w, box_w)
    assert 1 <= height <= min(src_h, box_h)


@given(sides, sides, boxes, boxes)
def test_inside_keeps_the_aspect_within_one_pixel(src_w, src_h, box_w, box_h) -> None:
    width, height = target_size(src_w, src_h, box_w, box_h, "inside")
    # One side is exact; the other is within a pixel of the proportional value.
    assert abs(height - width * src_h / src_w) <= 1 or abs(width - height * src_w / src_h) <= 1


@given(sides, sides, boxes, boxes)
def test_inside_is_the_largest_fit(src_w, src_h, box_w, box_h) -> None:
    width, height = target_size(src_w, src_h, box_w, box_h, "inside")
    # Either no downscale was needed, or a side touches the box.
    assert (width, height) == (src_w, src_h) or width == box_w or height == box_h


@given(sides, sides, boxes, boxes)
def test_cover_fills_the_box_where_the_source_allows(src_w, src_h, box_w, box_h) -> None:
    width, height = target_size(src_w, src_h, box_w, box_h, "cover")
    assert (width, height) == (min(src_w, box_w), min(src_h, box_h))


@given(sides, sides, boxes, boxes)
def test_cover_resize_covers_the_crop_keeps_aspect_and_never_upscales(
    src_w, src_h, box_w, box_h
) -> None:
    resized_w, resized_h = cover_resize_size(src_w, src_h, box_w, box_h)
    width, height = target_size(src_w, src_h, box_w, box_h, "cover")
    assert width <= resized_w <= src_w
    assert height <= resized_h <= src_h
    assert (
        abs(resized_h - resized_w * src_h / src_w) <= 1
        or abs(resized_w - resized_h * src_w / src_h) <= 1
    )


@given(sides, sides, sides, sides)
def test_centre_crop_stays_inside_and_is_centred(width, height, crop_w, crop_h) -> None:
    left, top, out_w, out_h = centre_crop(width, height, crop_w, crop_h)
    assert (out_w, out_h) == (min(crop_w, width), min(crop_h, height))
    assert left >= 0
    assert left + out_w <= width
    assert top >= 0
    assert top + out_h <= height
    assert abs(left - (width - left - out_w)) <= 1
    assert abs(top - (height - top - out_h)) <= 1
