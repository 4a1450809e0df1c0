"""An on-request transform as plain values: imgproxy's processing options once parsed and
normalised (`Transform`), the limits on what one may produce, and what the engine is asked and
gives back (`TransformRequest`, `Variant`).

`core/img_url.py` parses a URL into these (its grammar is docs/api.md's "On-request
transforms"); `engine/transform.py` applies them. They are named tuples, not dataclasses: a
transform crosses to a rendering process, which imports no dataclasses (core/rendering.py says
why), and this module imports nothing a rendering process does not need (no hashing: the
signature is img_url.py's).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple

from imgpipe.core.errors import InvalidRequestError
from imgpipe.core.formats import CONTENT_TYPES, OutputFormat
from imgpipe.core.rendering import RenderLimits, RenderPreset

GravityType = Literal["ce", "no", "so", "ea", "we", "noea", "nowe", "soea", "sowe", "sm", "fp"]
ResizingType = Literal["fit", "fill", "fill-down", "force", "auto"]
Rgb = tuple[int, int, int]


def number(value: float) -> str:
    """A number as the canonical string writes it: 2 for 2.0, 1.5, never 1.50."""
    exact = float(value).is_integer() and abs(value) < 1e15
    return str(int(value)) if exact else repr(float(value))


# A twin holds a JPEG decoded at 1/TWIN_SHRINK of each side (engine/twin.py).
TWIN_SHRINK = 8


class Gravity(NamedTuple):
    """Where a crop is taken, or an extended image placed: a compass point (or the centre)
    with offsets (>= 1 or <= -1: pixels, times dpr; between: a share of the side), the focus
    point fp (x, y in 0..1), or sm: libvips' attention."""

    type: GravityType = "ce"
    x: float = 0.0
    y: float = 0.0

    def canonical(self) -> str:
        if self.type == "sm":
            return "sm"
        return f"{self.type}:{number(self.x)}:{number(self.y)}"


CENTRE = Gravity()


class Transform(NamedTuple):
    """imgproxy's processing options, normalised: defaults applied, aliases and meta-options
    (resize, size) resolved into their parts, values range-checked. Each field is the option
    of the same name in docs/api.md; `dpr` is kept apart from the sizes, as imgproxy keeps it
    (it also scales gravity offsets, and stops where the source runs out of pixels)."""

    resizing_type: ResizingType = "fit"
    width: int = 0  # 0: from the height and the source's aspect (force: the source's)
    height: int = 0
    min_width: int = 0
    min_height: int = 0
    zoom_x: float = 1.0
    zoom_y: float = 1.0
    dpr: float = 1.0
    enlarge: bool = False
    extend: bool = False
    extend_gravity: Gravity = CENTRE
    gravity: Gravity = CENTRE
    crop_width: float = 0.0  # >= 1: pixels; below: a share of the source; 0: all of it
    crop_height: float = 0.0
    crop_gravity: Gravity | None = None  # None: `gravity`'s
    rotate: int = 0  # clockwise, 0, 90, 180 or 270, after the EXIF orientation
    auto_rotate: bool = True
    background: Rgb | None = None  # None: flattened onto the default only where no alpha
    blur: float = 0.0
    sharpen: float = 0.0
    pixelate: int = 0
    strip_metadata: bool = True
    quality: int = 0  # 0: format_quality's, else the configured default
    format_quality: tuple[tuple[OutputFormat, int], ...] = ()
    cachebuster: str = ""

    def quality_for(self, fmt: OutputFormat, default: int) -> int:
        """The encoder quality for `fmt`: q, else fq's for the format, else `default`. PNG is
        lossless whatever q says, as in imgproxy: only fq:png (below 100: a palette) or the
        default changes it."""
        if self.quality and fmt != "png":
            return self.quality
        return dict(self.format_quality).get(fmt, default)

    def normalised(self) -> Transform:
        """The same transform with what cannot change the output reset to its default, so
        that two URLs meaning the same thing are equal (and canonical() the same)."""
        sized = self.width > 0 or self.height > 0
        cropped = self.crop_width > 0 or self.crop_height > 0
        crop_gravity = self.crop_gravity if cropped else None
        q = self.quality  # q overrides fq, but for PNG, which q leaves alone
        return self._replace(
            resizing_type=self.resizing_type if sized else "fit",
            extend_gravity=self.extend_gravity if self.extend else CENTRE,
            crop_gravity=None if crop_gravity == self.gravity else crop_gravity,
            rotate=self.rotate % 360,
            pixelate=self.pixelate if self.pixelate > 1 else 0,
            format_quality=tuple(
                sorted(pair for pair in set(self.format_quality) if pair[0] == "png" or not q)
            ),
        )

    def canonical(self) -> str:
        """The options that shape the output, in one fixed order with imgproxy's short names,
        those at their defaults left out: what a cache of results keys on (with the source and
        the output format). Equal transforms give equal strings; "" is the identity."""
        parts = [
            part
            for name, value in zip(self._fields, self, strict=True)
            if value != _DEFAULTS[name] and (part := _CANONICAL[name](value))
        ]
        return "/".join(parts)


_DEFAULTS = Transform()._asdict()


def _colour(rgb: Rgb | None) -> str:
    return "bg:" + ":".join(str(c) for c in rgb) if rgb else ""


def _flag(name: str) -> Callable[[Any], str]:
    return lambda on: f"{name}:{int(bool(on))}"


_CANONICAL: dict[str, Callable[[Any], str]] = {
    "resizing_type": lambda v: f"rt:{v}",
    "width": lambda v: f"w:{v}",
    "height": lambda v: f"h:{v}",
    "min_width": lambda v: f"mw:{v}",
    "min_height": lambda v: f"mh:{v}",
    "zoom_x": lambda v: f"zx:{number(v)}",
    "zoom_y": lambda v: f"zy:{number(v)}",
    "dpr": lambda v: f"dpr:{number(v)}",
    "enlarge": _flag("el"),
    "extend": _flag("ex"),
    "extend_gravity": lambda g: f"exg:{g.canonical()}",
    "gravity": lambda g: f"g:{g.canonical()}",
    "crop_width": lambda v: f"cw:{number(v)}",
    "crop_height": lambda v: f"ch:{number(v)}",
    "crop_gravity": lambda g: f"cg:{g.canonical()}",
    "rotate": lambda v: f"rot:{v}",
    "auto_rotate": _flag("ar"),
    "background": _colour,
    "blur": lambda v: f"bl:{number(v)}",
    "sharpen": lambda v: f"sh:{number(v)}",
    "pixelate": lambda v: f"pix:{v}",
    "strip_metadata": _flag("sm"),
    "quality": lambda v: f"q:{v}",
    "format_quality": lambda pairs: "fq:" + ":".join(f"{f}:{q}" for f, q in pairs),
    "cachebuster": lambda v: f"cb:{v}",
}


class TransformLimits(NamedTuple):
    """What a transform may produce (settings' transforms section): a result over them is
    refused with a 400, from the options alone where they tell, else from the header."""

    max_width: int = 8192
    max_height: int = 8192
    max_pixels: int = 40_000_000
    max_dpr: float = 4.0


def check_requested(transform: Transform, limits: TransformLimits) -> None:
    """Refuse (InvalidRequestError) what the options alone show to be over `limits`: a dpr
    over max_dpr, or a width or height asked for (times dpr and zoom) over the limits."""
    if transform.dpr > limits.max_dpr:
        raise InvalidRequestError(
            f"dpr {number(transform.dpr)} is over the limit of {number(limits.max_dpr)}"
        )
    # Whatever the source, a zoom multiplies a result of at least 1 px.
    if transform.zoom_x > limits.max_width or transform.zoom_y > limits.max_height:
        zoom = f"{number(transform.zoom_x)}:{number(transform.zoom_y)}"
        raise InvalidRequestError(f"zoom {zoom} is over the limits of the result's size")
    width = round(transform.width * transform.dpr * transform.zoom_x)
    height = round(transform.height * transform.dpr * transform.zoom_y)
    check_size("the requested size", width, height, limits)


def check_size(what: str, width: int, height: int, limits: TransformLimits) -> None:
    """Refuse a `width` x `height` result (0: not known) over `limits`, naming `what`."""
    if width > limits.max_width or height > limits.max_height:
        raise InvalidRequestError(
            f"{what} is {width or '?'}x{height or '?'} px; the limit is"
            f" {limits.max_width}x{limits.max_height}"
        )
    if width * height > limits.max_pixels:
        raise InvalidRequestError(
            f"{what} is {width}x{height} = {width * height:,} pixels; the limit is"
            f" {limits.max_pixels:,}"
        )


class TransformRequest(NamedTuple):
    """What the engine is asked: one original through `transform`, written as `formats[0]`,
    or, given several (imgproxy's "best"), as whichever of them is smallest. `encoder`
    carries the encoder settings and each format's default quality (a rendition preset's
    fields; its size is not used); `background` is what transparency becomes where the
    format has none and the URL names no background. `twin`: the original's twin, where
    the cache holds one; `keep_twin`: hand back a twin where the render makes the decode a
    twin holds (engine/twin.py)."""

    transform: Transform
    formats: tuple[OutputFormat, ...]
    encoder: RenderPreset
    background: Rgb
    source_limits: RenderLimits
    limits: TransformLimits
    fast_shrink_on_load: bool = False  # JPEGs decoded softer, for less CPU (engine.decode)
    twin: bytes | None = None
    keep_twin: bool = False


class Variant(NamedTuple):
    """A transform's result: the encoded bytes, their format and size; the twin it made,
    where it was asked to keep one and made that decode (TransformRequest.keep_twin)."""

    data: bytes
    format: OutputFormat
    width: int
    height: int
    twin: bytes | None = None

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]
