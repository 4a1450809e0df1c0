"""A transform's geometry, pure: the sizes imgproxy's pipeline works out for each resizing
type, dpr, zoom, min sizes, crop and extend, and where gravity puts a box."""

from __future__ import annotations

import pytest

from imgpipe.core.transform import Gravity, Transform
from imgpipe.engine.transform_plan import crop_size, plan, position


def output(src_w: int, src_h: int, /, **fields: object) -> tuple[int, int]:
    return plan(src_w, src_h, Transform(**fields)).output  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        # fit: the largest size of the source's aspect inside the box
        ({"width": 100, "height": 100}, (100, 75)),
        ({"width": 100}, (100, 75)),  # 0: from the other side and the aspect
        ({"height": 150}, (200, 150)),
        ({"width": 1000, "height": 1000}, (400, 300)),  # never enlarged...
        ({"width": 1000, "height": 1000, "enlarge": True}, (1000, 750)),  # ...unless asked
        # fill: the box covered, the overflow cut
        ({"resizing_type": "fill", "width": 100, "height": 100}, (100, 100)),
        ({"resizing_type": "fill", "width": 300, "height": 50}, (300, 50)),
        ({"resizing_type": "fill", "width": 1000, "height": 100}, (400, 100)),  # no enlarge
        # fill-down: as fill, but a box too big is shrunk to the box's aspect
        ({"resizing_type": "fill-down", "width": 1000, "height": 500}, (400, 200)),
        ({"resizing_type": "fill-down", "width": 100, "height": 100}, (100, 100)),
        # force: both sides as asked, the aspect dropped; 0 keeps the source's side
        ({"resizing_type": "force", "width": 50, "height": 70}, (50, 70)),
        ({"resizing_type": "force", "width": 50}, (50, 300)),
        # auto: fill when source and box have the same orientation, else fit
        ({"resizing_type": "auto", "width": 200, "height": 100}, (200, 100)),
        ({"resizing_type": "auto", "width": 100, "height": 300}, (100, 75)),
        # dpr multiplies, up to what the source has
        ({"width": 100, "dpr": 2.0}, (200, 150)),
        ({"width": 300, "dpr": 2.0}, (400, 300)),
        ({"width": 300, "dpr": 2.0, "enlarge": True}, (600, 450)),
        # zoom multiplies the result
        ({"zoom_x": 0.5, "zoom_y": 0.5}, (200, 150)),
        ({"width": 100, "zoom_x": 2.0, "zoom_y": 1.0}, (200, 75)),
        # min-width and min-height win over the box, then the box cuts (imgproxy warns so)
        ({"width": 100, "min_width": 200}, (100, 150)),
        ({"height": 30, "min_height": 60}, (80, 30)),
        # extend pads to the box
        ({"width": 1000, "height": 1000, "extend": True}, (1000, 1000)),
        ({"width": 100, "height": 100, "extend": True}, (100, 100)),
        ({"width": 600, "extend": True}, (600, 300)),
        # crop first: an area in pixels or shares, then the rest applies to it
        ({"crop_width": 200, "crop_height": 0.5}, (200, 150)),
        ({"crop_width": 0.25, "crop_height": 0.25, "width": 50}, (50, 38)),
        ({"crop_width": 1000, "crop_height": 1000}, (400, 300)),  # no larger than the source
    ],
)
def test_the_output_size_of_each_option_on_a_400x300_source(
    fields: dict[str, object], expected: tuple[int, int]
) -> None:
    assert output(400, 300, **fields) == expected


def test_fill_resizes_to_cover_then_cuts_to_the_box() -> None:
    sizes = plan(400, 300, Transform("fill", 100, 100))
    assert sizes.scaled == (133, 100) and sizes.result == (100, 100)


def test_dpr_without_enlarge_is_lowered_to_what_the_source_can_give() -> None:
    sizes = plan(400, 300, Transform(width=300, dpr=2.0))
    assert sizes.dpr_scale == pytest.approx(400 / 300)
    assert plan(400, 300, Transform(width=100, dpr=3.0)).dpr_scale == 3.0


def test_a_resize_never_goes_below_one_pixel() -> None:
    assert output(10_000, 10, width=10) == (10, 1)
    assert output(10_000, 10, resizing_type="force", width=1, height=1) == (1, 1)


def test_crop_sizes_are_pixels_from_one_and_shares_below() -> None:
    assert crop_size(400, 0) == 0
    assert crop_size(400, 150.7) == 150
    assert crop_size(400, 0.5) == 200
    assert crop_size(400, 0.0001) == 1


@pytest.mark.parametrize(
    ("gravity", "dpr", "expected"),
    [
        # imgproxy centres at round-to-even((outer - inner + 1) / 2): 50.5 -> 50, 25.5 -> 26
        (Gravity("ce"), 1.0, (50, 26)),
        (Gravity("no"), 1.0, (50, 0)),
        (Gravity("so"), 1.0, (50, 50)),
        (Gravity("we"), 1.0, (0, 26)),
        (Gravity("ea"), 1.0, (100, 26)),
        (Gravity("nowe"), 1.0, (0, 0)),
        (Gravity("soea"), 1.0, (100, 50)),
        (Gravity("nowe", 10, 5), 1.0, (10, 5)),  # offsets >= 1: pixels
        (Gravity("nowe", 10, 5), 2.0, (20, 10)),  # times dpr
        (Gravity("nowe", 0.1, 0.2), 2.0, (15, 20)),  # below 1: a share of the outer side
        (Gravity("soea", 10, 5), 1.0, (90, 45)),  # from the far edges
        (Gravity("ce", -30, 0), 1.0, (20, 26)),
        (Gravity("fp", 0.5, 0.5), 1.0, (50, 25)),
        (Gravity("fp", 0.0, 1.0), 1.0, (0, 50)),  # kept inside
        (Gravity("fp", 0.9, 0.1), 1.0, (100, 0)),
    ],
)
def test_gravity_places_a_50x50_box_in_150x100(
    gravity: Gravity, dpr: float, expected: tuple[int, int]
) -> None:
    assert position(150, 100, 50, 50, gravity, dpr) == expected
