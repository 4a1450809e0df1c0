"""A transform's geometry, before any pixel: the sizes imgproxy's pipeline works out for an
image of a given size (its processing/prepare.go and calc_position.go, in Python).

    crop      the crop option's area, in the source's pixels (0: the whole side)
    scaled    that area once resized: the resizing type's shrink on each side, times zoom and
              dpr, stopped at the source's size unless enlarge, raised to min-width/height
    result    the box the resized image is then cut to (fill, fill-down), with gravity
    target    the requested box (times dpr and zoom), which extend pads the result out to
    output    the final size

All in the orientation the result has (after the EXIF orientation and rotate). Rounding is
Go's: math.Round (half away from zero) for sizes, math.RoundToEven for positions.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from imgpipe.core.transform import Gravity, Transform

Size = tuple[int, int]


class Plan(NamedTuple):
    source: Size
    crop: Size
    scaled: Size
    result: Size
    target: Size
    dpr_scale: float  # the dpr in effect: lowered where the source has too few pixels
    output: Size

    @property
    def area(self) -> Size:
        """The part of the source that is resized: the crop's area, or all of it."""
        return (self.crop[0] or self.source[0], self.crop[1] or self.source[1])


def go_round(value: float) -> int:
    """Go's math.Round on a non-negative number: halves away from zero."""
    return math.floor(value + 0.5)


def scale(side: int, factor: float) -> int:
    return 0 if side == 0 else go_round(side * factor)


def min_nonzero(a: int, b: int) -> int:
    return b if a == 0 else a if b == 0 else min(a, b)


def crop_size(side: int, crop: float) -> int:
    """The crop option's side: 0 none, >= 1 pixels, else a share of `side` (at least 1)."""
    if crop == 0:
        return 0
    if crop >= 1:
        return int(crop)
    return max(1, scale(side, crop))


def plan(width: int, height: int, transform: Transform) -> Plan:
    """The sizes of `transform` on a `width` x `height` image (oriented as the result)."""
    crop = (crop_size(width, transform.crop_width), crop_size(height, transform.crop_height))
    area_w, area_h = min_nonzero(crop[0], width), min_nonzero(crop[1], height)
    wscale, hscale, dpr_scale = _scales(area_w, area_h, transform)
    scaled = (scale(area_w, wscale), scale(area_h, hscale))
    target = (
        scale(transform.width, dpr_scale * transform.zoom_x),
        scale(transform.height, dpr_scale * transform.zoom_y),
    )
    result = _result_crop(scaled, target, transform)
    output = (min_nonzero(result[0], scaled[0]), min_nonzero(result[1], scaled[1]))
    if transform.extend and (target[0] > output[0] or target[1] > output[1]):
        output = (max(target[0], output[0]), max(target[1], output[1]))
    return Plan((width, height), crop, scaled, result, target, dpr_scale, output)


def _resizing(src_w: float, src_h: float, dst_w: float, dst_h: float, kind: str) -> str:
    """auto: fill when the source and the box are both landscape or both portrait, else fit."""
    if kind != "auto":
        return kind
    same = (src_w - src_h >= 0) == (dst_w - dst_h >= 0)
    return "fill" if same else "fit"


def _scales(src_w: int, src_h: int, t: Transform) -> tuple[float, float, float]:
    """(width scale, height scale, dpr in effect): imgproxy's calcScale."""
    dst_w, dst_h = float(t.width or src_w), float(t.height or src_h)
    wshrink = src_w / dst_w if dst_w != src_w else 1.0
    hshrink = src_h / dst_h if dst_h != src_h else 1.0
    if wshrink != 1 or hshrink != 1:
        kind = _resizing(src_w, src_h, dst_w, dst_h, t.resizing_type)
        if t.width == 0 and kind != "force":
            wshrink = hshrink
        elif t.height == 0 and kind != "force":
            hshrink = wshrink
        elif kind == "fit":
            wshrink = hshrink = max(wshrink, hshrink)
        elif kind in ("fill", "fill-down"):
            wshrink = hshrink = min(wshrink, hshrink)
    wshrink /= t.zoom_x
    hshrink /= t.zoom_y
    dpr = t.dpr
    if not t.enlarge:
        least = min(wshrink, hshrink)
        if least < 1:
            wshrink, hshrink = wshrink / least, hshrink / least
            if not t.extend:  # keep the composition the same whatever the dpr
                dpr /= least
        dpr = min(dpr, wshrink, hshrink)  # the most dpr can give without enlarging
    if t.min_width > 0 and (least_w := src_w / t.min_width) < wshrink:
        hshrink /= wshrink / least_w
        wshrink = least_w
    if t.min_height > 0 and (least_h := src_h / t.min_height) < hshrink:
        wshrink /= hshrink / least_h
        hshrink = least_h
    wshrink = min(wshrink / dpr, float(src_w))  # never below 1 px
    hshrink = min(hshrink / dpr, float(src_h))
    return 1.0 / wshrink, 1.0 / hshrink, dpr


def _result_crop(scaled: Size, target: Size, t: Transform) -> Size:
    """The box the resized image is cut to: the target, or for fill-down without enlarge,
    the largest box of the target's aspect that the resized image covers."""
    if t.resizing_type != "fill-down" or t.enlarge:
        return target
    diff_w = target[0] / scaled[0]
    diff_h = target[1] / scaled[1]
    if diff_w > diff_h and diff_w > 1:
        return scaled[0], scale(scaled[0], target[1] / target[0])
    if diff_h > diff_w and diff_h > 1:
        return scale(scaled[1], target[0] / target[1]), scaled[1]
    return target


def position(
    outer_w: int, outer_h: int, inner_w: int, inner_h: int, gravity: Gravity, dpr: float
) -> tuple[int, int]:
    """(left, top) of an `inner` box in an `outer` one by `gravity` (imgproxy's
    calcPosition): offsets >= 1 (or <= -1) are pixels times `dpr`, others a share of the
    outer side; fp puts the box's centre at the point. Kept inside the outer box."""
    if gravity.type == "fp":
        left = round(outer_w * gravity.x) - inner_w // 2
        top = round(outer_h * gravity.y) - inner_h // 2
    else:
        off_x = _offset(outer_w, gravity.x, dpr)
        off_y = _offset(outer_h, gravity.y, dpr)
        left = round((outer_w - inner_w + 1) / 2) + off_x
        top = round((outer_h - inner_h + 1) / 2) + off_y
        if gravity.type in ("no", "noea", "nowe"):
            top = off_y
        if gravity.type in ("ea", "noea", "soea"):
            left = outer_w - inner_w - off_x
        if gravity.type in ("so", "soea", "sowe"):
            top = outer_h - inner_h - off_y
        if gravity.type in ("we", "nowe", "sowe"):
            left = off_x
    left = max(0, min(left, outer_w - inner_w))
    top = max(0, min(top, outer_h - inner_h))
    return left, top


def _offset(side: int, offset: float, dpr: float) -> int:
    # Python's round() is Go's RoundToEven.
    return round(offset * dpr) if abs(offset) >= 1 else round(side * offset)
