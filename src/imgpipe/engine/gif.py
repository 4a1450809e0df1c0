"""GIF: where the first frame lies on its canvas, and the canvas around it made transparent.

A GIF's first frame may cover only part of its logical screen. Browsers show the rest
transparent (they ignore the background colour); libvips (8.18.7, libnsgif) paints it opaque
black, and Pillow paints it in the background colour. So imgpipe reads the first frame's box
from the bytes and gives the decoded image an alpha of 0 outside it (docs/decoding.md).
"""

from __future__ import annotations

import struct

from imgpipe.engine.vips import VipsImage, vips

Box = tuple[int, int, int, int]  # left, top, width, height on the canvas

_EXTENSION = 0x21
_IMAGE = 0x2C
_TRAILER = 0x3B
_MAX_EXTENSIONS = 1000  # a GIF of endless extensions before its first frame is not read


def uncovered_box(data: bytes) -> Box | None:
    """The first frame's box where it leaves part of the canvas uncovered; None where it
    covers it all, or the bytes cannot be read this far (libvips then says what is wrong)."""
    try:
        return _first_box(data)
    except (IndexError, struct.error):
        return None


def _first_box(data: bytes) -> Box | None:
    canvas_w, canvas_h, flags = struct.unpack_from("<HHB", data, 6)
    at = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    for _ in range(_MAX_EXTENSIONS):
        block = data[at]
        if block == _EXTENSION:
            at = _skip_sub_blocks(data, at + 2)
        elif block == _IMAGE:
            left, top, width, height = struct.unpack_from("<HHHH", data, at + 1)
            right, bottom = min(left + width, canvas_w), min(top + height, canvas_h)
            if left == 0 and top == 0 and right >= canvas_w and bottom >= canvas_h:
                return None
            return left, top, max(0, right - left), max(0, bottom - top)
        else:
            return None
    return None


def _skip_sub_blocks(data: bytes, at: int) -> int:
    while data[at]:
        at += data[at] + 1
    return at + 1


def clear_outside(image: VipsImage, box: Box, canvas: tuple[int, int]) -> VipsImage:
    """`image` (the canvas resized) with alpha 0 outside `box` (in canvas pixels)."""
    pyvips = vips()
    x_scale = image.width / canvas[0]
    y_scale = image.height / canvas[1]
    left, top = round(box[0] * x_scale), round(box[1] * y_scale)
    width, height = round(box[2] * x_scale), round(box[3] * y_scale)
    mask = pyvips.Image.black(image.width, image.height)
    if width > 0 and height > 0:
        mask = mask.draw_rect(255, left, top, width, height, fill=True)
    mask = mask.cast("uchar")
    if image.hasalpha():
        alpha = (image[image.bands - 1] * mask / 255).cast("uchar")
        return image.extract_band(0, n=image.bands - 1).bandjoin(alpha)
    return image.bandjoin(mask)
