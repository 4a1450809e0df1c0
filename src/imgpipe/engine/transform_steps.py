"""The pixel steps of a transform, each on an image in memory: crop by gravity, resize to an
exact size, blur, sharpen, pixelate, extend, and the metadata an output keeps.

Each follows imgproxy's step of the same name (processing/*.go); their sizes and positions
come from transform_plan.py. Smart gravity is libvips' attention (`smartcrop`).
"""

from __future__ import annotations

import math

from imgpipe.core.transform import Gravity
from imgpipe.engine.exif import without_gps
from imgpipe.engine.transform_plan import min_nonzero, position
from imgpipe.engine.vips import VipsImage, vips


def crop(image: VipsImage, width: int, height: int, gravity: Gravity, dpr: float) -> VipsImage:
    """`image` cut to `width` x `height` (0: that side whole; never larger than the image)
    at `gravity`: sm is libvips' attention, the rest transform_plan.position."""
    img_w, img_h = int(image.width), int(image.height)
    width, height = min_nonzero(width, img_w), min_nonzero(height, img_h)
    if (width == 0 and height == 0) or (width >= img_w and height >= img_h):
        return image
    if gravity.type == "sm":
        return image.smartcrop(width, height, interesting="attention")
    left, top = position(img_w, img_h, width, height, gravity, dpr)
    return image.crop(left, top, width, height)


def scaled_gravity(gravity: Gravity, x_scale: float, y_scale: float) -> Gravity:
    """`gravity` for an image decoded at a scale: absolute offsets (>= 1 px) scaled and
    rounded (so that they stay absolute), shares and focus points as they are."""
    if gravity.type == "fp":
        return gravity
    x = round(gravity.x * x_scale) if abs(gravity.x) >= 1 else gravity.x
    y = round(gravity.y * y_scale) if abs(gravity.y) >= 1 else gravity.y
    return gravity._replace(x=float(x), y=float(y))


def resize(image: VipsImage, width: int, height: int) -> VipsImage:
    """`image` at exactly `width` x `height` (up or down; alpha premultiplied meanwhile)."""
    if (int(image.width), int(image.height)) == (width, height):
        return image
    return image.thumbnail_image(width, height=height, size="force", no_rotate=True).copy_memory()


def rotate(image: VipsImage, angle: int) -> VipsImage:
    """`image` turned clockwise by `angle` (0, 90, 180, 270)."""
    if angle % 360 == 0:
        return image
    return image.rot(f"d{angle % 360}")


def filters(image: VipsImage, blur: float, sharpen: float, pixelate: int) -> VipsImage:
    """Gaussian blur (sigma), sharpen (sigma) and pixelate (block size), in that order, as
    imgproxy applies them: alpha premultiplied for the first two, the format kept."""
    if blur <= 0 and sharpen <= 0 and pixelate <= 1:
        return image
    interpretation, band_format = image.interpretation, image.format
    alpha = bool(image.hasalpha()) and (blur > 0 or sharpen > 0)
    if alpha:
        image = image.premultiply()
    if blur > 0:
        image = image.gaussblur(blur)
    if sharpen > 0:
        image = image.sharpen(sigma=sharpen)
    if pixelate > 1:
        image = _pixelate(image, pixelate)
    if alpha:
        image = image.unpremultiply()
    return image.colourspace(interpretation).cast(band_format).copy_memory()


def _pixelate(image: VipsImage, size: int) -> VipsImage:
    width, height = int(image.width), int(image.height)
    size = min(size, max(width, height))
    padded_w = math.ceil(width / size) * size
    padded_h = math.ceil(height / size) * size
    if (padded_w, padded_h) != (width, height):
        image = image.embed(0, 0, padded_w, padded_h, extend="mirror")
    image = image.shrink(size, size).zoom(size, size)
    return image.crop(0, 0, width, height)


def extend(image: VipsImage, width: int, height: int, gravity: Gravity, dpr: float) -> VipsImage:
    """`image` placed on a transparent `width` x `height` canvas at `gravity` (no smaller
    than the image; flattened later where the format or the URL wants a background)."""
    img_w, img_h = int(image.width), int(image.height)
    if width <= img_w and height <= img_h:
        return image
    width, height = max(width, img_w), max(height, img_h)
    left, top = position(width, height, img_w, img_h, gravity, dpr)
    if not image.hasalpha():
        image = image.bandjoin(255)
    return image.embed(left, top, width, height, extend="black")


def keep_flags(strip: bool) -> int:
    """libvips' `keep` for an output: nothing, or (strip_metadata off) EXIF and IPTC. Never
    XMP, which may carry a location too, nor the ICC profile: outputs are sRGB."""
    keep = vips().enums.ForeignKeep
    return int(keep.NONE) if strip else int(keep.EXIF | keep.IPTC)


def kept_metadata(image: VipsImage) -> VipsImage:
    """What an output that keeps its metadata carries: EXIF without GPS, and orientation 1
    (the pixels are upright already, or were asked not to be turned: no reader should)."""
    image = without_gps(image)
    image.set_type(vips().GValue.gint_type, "orientation", 1)
    return image
