"""Rendition geometry: pure integer arithmetic on sizes, no pixels and no pyvips.

Rounding rule, used everywhere here: the side that limits the scale is set exactly to the
box (or kept at the source's size when no downscale is needed), and the other side is the
exact proportional value rounded half up, computed in integers (no float drift), and never
less than 1 px. So a 4000x3000 photo in a 1600 box is 1600x1200, and 1000x333 in 256 is
256x85 (85.248 rounds down) while 1000x334 in 256 is 256x86 (85.504 rounds up).
"""

from __future__ import annotations

from typing import Literal

Fit = Literal["inside", "cover"]

# EXIF orientations 5-8 transpose the stored pixels: width and height swap.
_TRANSPOSING = frozenset({5, 6, 7, 8})


def oriented_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    """The size as displayed once EXIF `orientation` (1-8) is applied; others count as 1."""
    if orientation in _TRANSPOSING:
        return height, width
    return width, height


def _scaled(side: int, numerator: int, denominator: int) -> int:
    """side * numerator / denominator, rounded half up, at least 1."""
    return max(1, (2 * side * numerator + denominator) // (2 * denominator))


def _check(*sides: int) -> None:
    if any(side < 1 for side in sides):
        raise ValueError(f"sizes must be positive, got {sides}")


def inside_size(src_w: int, src_h: int, box_w: int, box_h: int) -> tuple[int, int]:
    """The largest size with the source's aspect that fits in the box, never upscaled."""
    _check(src_w, src_h, box_w, box_h)
    if src_w <= box_w and src_h <= box_h:
        return src_w, src_h
    # Width limits when box_w / src_w <= box_h / src_h (compared in integers).
    if box_w * src_h <= box_h * src_w:
        return box_w, min(box_h, _scaled(src_h, box_w, src_w))
    return min(box_w, _scaled(src_w, box_h, src_h)), box_h


def cover_resize_size(src_w: int, src_h: int, box_w: int, box_h: int) -> tuple[int, int]:
    """The size to resize to before cropping for "cover": the smallest size with the source's
    aspect that covers the box, capped at the source's size (never upscaled)."""
    _check(src_w, src_h, box_w, box_h)
    # Width drives when box_w / src_w >= box_h / src_h.
    if box_w * src_h >= box_h * src_w:
        if box_w >= src_w:
            return src_w, src_h
        return box_w, _scaled(src_h, box_w, src_w)
    if box_h >= src_h:
        return src_w, src_h
    return _scaled(src_w, box_h, src_h), box_h


def resize_size(src_w: int, src_h: int, box_w: int, box_h: int, fit: Fit) -> tuple[int, int]:
    """The size the whole image is resized to for a rendition (before any cover crop)."""
    if fit == "cover":
        return cover_resize_size(src_w, src_h, box_w, box_h)
    return inside_size(src_w, src_h, box_w, box_h)


def target_size(src_w: int, src_h: int, box_w: int, box_h: int, fit: Fit) -> tuple[int, int]:
    """The final size of a rendition of a `src_w` x `src_h` (oriented) image in a box.

    inside: the largest size fitting the box, aspect kept, never upscaled.
    cover: the box filled (the overflow cropped), never upscaled: where the source is
    smaller than the box on a side, that side is the source's.
    """
    resized_w, resized_h = resize_size(src_w, src_h, box_w, box_h, fit)
    if fit == "cover":
        return min(resized_w, box_w), min(resized_h, box_h)
    return resized_w, resized_h


def centre_crop(width: int, height: int, crop_w: int, crop_h: int) -> tuple[int, int, int, int]:
    """(left, top, width, height) of a `crop_w` x `crop_h` window centred in the image."""
    crop_w, crop_h = min(crop_w, width), min(crop_h, height)
    return (width - crop_w) // 2, (height - crop_h) // 2, crop_w, crop_h
