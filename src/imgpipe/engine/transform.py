"""An on-request transform: one original through a Transform into one encoded Variant.

    transform(data, request)
      read_header   the render's checks: magic bytes, bytes, formats, pixels, frames, before
                    any pixel is decoded                                       (header.py)
      plan          the sizes imgproxy's pipeline works out, from the header alone; a result
                    over the limits is refused here, still before decoding  (transform_plan.py)
      decode        ONCE, shrunk on load to the size the result needs, upright (unless
                    auto_rotate is off), 8-bit sRGB; then rotate              (decode.py)
                    a JPEG's 1/8 decode read from its twin where given one, or kept as
                    one where asked                                             (twin.py)
      crop          the crop option, at its gravity                  (transform_steps.py)
      resize        to the planned size, exactly
      crop          to the result box (fill, fill-down) at the gravity: sm is libvips' attention
      filters       blur, sharpen, pixelate
      extend        onto a transparent canvas of the target's size, at its gravity
      encode        flattened onto the background where the format has no alpha (or the URL
                    names one); no metadata (strip_metadata off: EXIF and IPTC, never GPS);
                    the renditions' encoders (writers.py); for several formats, the smallest

Every failure leaves as an ImgpipeError (pipeline.guard); a result over the limits is an
InvalidRequestError (400), as the options alone would have been.
"""

from __future__ import annotations

from imgpipe.core.errors import InvalidRequestError, ProcessingError
from imgpipe.core.formats import OutputFormat
from imgpipe.core.rendering import RenderPreset
from imgpipe.core.transform import Transform, TransformRequest, Variant, check_size
from imgpipe.engine import geometry
from imgpipe.engine import transform_steps as steps
from imgpipe.engine.colour import flatten
from imgpipe.engine.decode import decode
from imgpipe.engine.header import Header, read_header
from imgpipe.engine.memory import hand_back_free_memory
from imgpipe.engine.pipeline import guard
from imgpipe.engine.transform_plan import Plan, go_round, plan
from imgpipe.engine.twin import Twins
from imgpipe.engine.vips import VipsImage, configure_vips
from imgpipe.engine.writers import PillowPixels, pillow_encodes, write

# HEIF's rotation is libheif's, applied as it decodes; AVIF's too (header.py).
_ALWAYS_UPRIGHT = frozenset({"heif", "avif"})


def transform(data: bytes, request: TransformRequest) -> Variant:
    """`data` through `request.transform`, encoded (what a rendering process runs too)."""
    configure_vips()
    return guard(lambda: _transform(data, request))


def _transform(data: bytes, request: TransformRequest) -> Variant:
    t = request.transform
    if not request.formats:
        raise ProcessingError("a transform needs an output format")
    header = read_header(data, request.source_limits)
    upright = t.auto_rotate or header.format in _ALWAYS_UPRIGHT
    stored = (header.width, header.height)
    if not upright:
        stored = geometry.oriented_size(header.width, header.height, header.orientation)
    width, height = stored[::-1] if t.rotate % 180 else stored
    try:
        sizes = plan(width, height, t)
    except (OverflowError, ZeroDivisionError):  # a zoom past any size a float holds
        raise InvalidRequestError("the result would be too large to compute") from None
    check_size("the result", *sizes.output, request.limits)
    scaled_pixels = sizes.scaled[0] * sizes.scaled[1]
    if scaled_pixels > request.limits.max_pixels:
        check_size("the image resized before its crop", *sizes.scaled, request.limits)
    sharp = not request.fast_shrink_on_load
    twins = Twins(request.twin, request.keep_twin)
    image = _decoded(data, header, sizes, t, upright=upright, sharp=sharp, twins=twins)
    image = _shaped(image, sizes, t)
    return _encoded(image, request)._replace(twin=twins.made)


def _decoded(
    data: bytes,
    header: Header,
    sizes: Plan,
    t: Transform,
    *,
    upright: bool,
    sharp: bool,
    twins: Twins,
) -> VipsImage:
    """The source decoded once, at the scale the result needs (never above its own size;
    `sharp`: decode.py's sharp decode), upright (where `upright`), turned by `rotate`, cut to
    the crop option's area; from `twins`' given twin where it serves (twin.py)."""
    scale = _decode_scale(sizes)
    width, height = (max(1, go_round(side * scale)) for side in sizes.source)
    turned = t.rotate % 180 != 0
    if header.progressive:
        hand_back_free_memory()
    size = (height, width) if turned else (width, height)
    image = decode(data, header, *size, upright=upright, sharp=sharp, twins=twins)
    image = steps.rotate(image, t.rotate)
    if sizes.crop == (0, 0):
        return image
    x_scale = int(image.width) / sizes.source[0]
    y_scale = int(image.height) / sizes.source[1]
    crop_w = max(1, go_round(sizes.crop[0] * x_scale)) if sizes.crop[0] else 0
    crop_h = max(1, go_round(sizes.crop[1] * y_scale)) if sizes.crop[1] else 0
    gravity = steps.scaled_gravity(t.crop_gravity or t.gravity, x_scale, y_scale)
    return steps.crop(image, crop_w, crop_h, gravity, 1.0)


def _decode_scale(sizes: Plan) -> float:
    """How much of the source's resolution the result needs: the larger of its two scales,
    capped at 1 (an enlargement is made after the decode, from the source's own pixels)."""
    area_w, area_h = sizes.area
    return min(1.0, max(sizes.scaled[0] / area_w, sizes.scaled[1] / area_h))


def _shaped(image: VipsImage, sizes: Plan, t: Transform) -> VipsImage:
    """The decoded area resized, cut to the result box, filtered and extended."""
    image = steps.resize(image, *sizes.scaled)
    image = steps.crop(image, *sizes.result, t.gravity, sizes.dpr_scale)
    image = steps.filters(image, t.blur, t.sharpen, t.pixelate)
    if t.extend:
        image = steps.extend(image, *sizes.target, t.extend_gravity, sizes.dpr_scale)
    return image


def _encoded(image: VipsImage, request: TransformRequest) -> Variant:
    """`image` in each of the request's formats; the smallest (the only one, usually)."""
    t = request.transform
    background = t.background or request.background
    if t.background is not None:
        image = flatten(image, background)
    keep = steps.keep_flags(t.strip_metadata)
    if not t.strip_metadata:
        image = steps.kept_metadata(image)
    encoders = [_encoder(request, fmt) for fmt in dict.fromkeys(request.formats)]
    uses = sum(pillow_encodes(spec, spec.formats[0], keep) for spec in encoders)
    as_pillow = PillowPixels(image, background, uses)
    best: Variant | None = None
    for spec in encoders:
        fmt: OutputFormat = spec.formats[0]
        blob = write(image, fmt, spec, keep, background, as_pillow)
        if best is None or len(blob) < len(best.data):
            best = Variant(blob, fmt, int(image.width), int(image.height))
    assert best is not None  # _transform refused a request with no format
    return best


def _encoder(request: TransformRequest, fmt: OutputFormat) -> RenderPreset:
    """The request's encoder settings for `fmt`, at the quality the URL asks for."""
    default = request.encoder.quality_for(fmt)
    quality = request.transform.quality_for(fmt, default)
    return request.encoder._replace(formats=(fmt,), quality={fmt: quality})
