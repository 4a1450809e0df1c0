"""imgproxy's processing options, one parser each: `name:arg1:arg2` into a Transform's fields.

Options apply in the order given and a later one overrides an earlier one, as in imgproxy
(whose options/parser/apply.go this follows): `rs:fill:300/w:200` asks for 200 px. A value
imgproxy would refuse is refused here too, with a message naming the option and the value;
where imgproxy only logs (a boolean that is not one, it takes as false) imgpipe refuses as
well. An option imgpipe does not implement is refused by name, never ignored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, get_args

from imgpipe.core.errors import InvalidRequestError
from imgpipe.core.formats import OutputFormat
from imgpipe.core.transform import Gravity, GravityType, ResizingType

Option = tuple[str, tuple[str, ...]]
Presets = Mapping[str, Sequence[Option]]
Fields = dict[str, Any]  # a Transform's fields while parsing, plus "format"

_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_HEX = re.compile(r"[0-9a-fA-F]{3}|[0-9a-fA-F]{6}")
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_RESIZING_TYPES: tuple[ResizingType, ...] = get_args(ResizingType)
_COMPASS: tuple[GravityType, ...] = ("ce", "no", "so", "ea", "we", "noea", "nowe", "soea", "sowe")
_FORMATS: dict[str, OutputFormat | str] = {
    "jpeg": "jpeg",
    "jpg": "jpeg",
    "png": "png",
    "webp": "webp",
    "avif": "avif",
    "best": "best",
}
# imgproxy's options that imgpipe does not implement, by every name imgproxy takes.
_UNSUPPORTED = {
    name: full
    for full, names in {
        "extend_aspect_ratio": ("extend_aspect_ratio", "extend_ar", "exar"),
        "trim": ("trim", "t"),
        "padding": ("padding", "pd"),
        "flip": ("flip", "fl"),
        "watermark": ("watermark", "wm"),
        "keep_copyright": ("keep_copyright", "kcr"),
        "strip_color_profile": ("strip_color_profile", "scp"),
        "preserve_hdr": ("preserve_hdr", "ph"),
        "enforce_thumbnail": ("enforce_thumbnail", "eth"),
        "max_bytes": ("max_bytes", "mb"),
        "skip_processing": ("skip_processing", "skp"),
        "raw": ("raw",),
        "expires": ("expires", "exp"),
        "filename": ("filename", "fn"),
        "return_attachment": ("return_attachment", "att"),
        "max_src_resolution": ("max_src_resolution", "msr"),
        "max_src_file_size": ("max_src_file_size", "msfs"),
        "max_animation_frames": ("max_animation_frames", "maf"),
        "max_animation_frame_resolution": ("max_animation_frame_resolution", "mafr"),
        "max_result_dimension": ("max_result_dimension", "mrd"),
    }.items()
    for name in names
}


def split_options(segments: Sequence[str]) -> tuple[list[Option], list[str]]:
    """The leading segments that are options (those with a ":"), and the rest: the source."""
    options: list[Option] = []
    for index, segment in enumerate(segments):
        name, colon, rest = segment.partition(":")
        if not colon:
            return options, list(segments[index:])
        options.append((name, tuple(rest.split(":"))))
    return options, []


def apply_options(
    fields: Fields, options: Sequence[Option], presets: Presets, used: tuple[str, ...] = ()
) -> None:
    """Apply each option to `fields` in order; a preset applies its own options where it
    stands (one already being applied is skipped, as imgproxy does)."""
    for name, args in options:
        if name in ("preset", "pr"):
            for preset in args:
                if preset not in presets:
                    known = ", ".join(sorted(presets)) or "none"
                    raise InvalidRequestError(
                        f"option {name}: unknown preset {preset!r} (known: {known})"
                    )
                if preset not in used:
                    apply_options(fields, presets[preset], presets, (*used, preset))
            continue
        handler = _HANDLERS.get(name)
        if handler is None:
            raise _unsupported(name)
        handler(fields, name, list(args))


def _unsupported(name: str) -> InvalidRequestError:
    full = _UNSUPPORTED.get(name)
    if full is not None:
        return InvalidRequestError(f"option {name} ({full}) is not supported by imgpipe")
    return InvalidRequestError(f"unknown option {name!r}")


def _bad(name: str, value: str, expected: str) -> InvalidRequestError:
    return InvalidRequestError(f"option {name}: {value!r} is not {expected}")


def _at_most(name: str, args: list[str], count: int) -> None:
    if len(args) > count:
        raise InvalidRequestError(
            f"option {name} takes at most {count} argument{'s' * (count > 1)},"
            f" got {len(args)} ({name}:{':'.join(args)})"
        )


def parse_int(name: str, value: str, low: int | None = 0, high: int | None = None) -> int:
    """An integer as Go's strconv.Atoi reads one, within low..high (None: unbounded)."""
    if not _INT.fullmatch(value):
        raise _bad(name, value, "an integer")
    number = int(value)
    if (low is not None and number < low) or (high is not None and number > high):
        span = f"{low}-{high}" if high is not None else f">= {low}"
        raise _bad(name, value, f"an integer in the range {span}")
    return number


def parse_float(name: str, value: str, *, zero: bool = True, low: float = 0.0) -> float:
    """A finite decimal number >= `low` (> 0 where `zero` is False)."""
    if not _FLOAT.fullmatch(value) or not math.isfinite(number := float(value)):
        raise _bad(name, value, "a number")
    if number < low or (not zero and number <= 0):
        raise _bad(name, value, "a positive number" + (" or 0" if zero else ""))
    return number


def parse_bool(name: str, value: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise _bad(name, value, "a boolean (1, t, true; 0, f, false)")


def _one(parse: Callable[[str, str], Any], field: str) -> Callable[[Fields, str, list[str]], None]:
    """A handler of an option with one argument, parsed by `parse`, into `field`."""

    def handler(fields: Fields, name: str, args: list[str]) -> None:
        _at_most(name, args, 1)
        fields[field] = parse(name, args[0])

    return handler


def _resizing_type(name: str, value: str) -> ResizingType:
    for known in _RESIZING_TYPES:
        if value == known:
            return known
    raise _bad(name, value, "a resizing type (" + ", ".join(_RESIZING_TYPES) + ")")


def _resize(fields: Fields, name: str, args: list[str]) -> None:
    _at_most(name, args, 8)
    if args[0]:
        fields["resizing_type"] = _resizing_type(name, args[0])
    if len(args) > 1:
        _size(fields, name, args[1:])


def _size(fields: Fields, name: str, args: list[str]) -> None:
    _at_most(name, args, 7)
    for field, value in zip(("width", "height"), args[:2], strict=False):
        if value:
            fields[field] = parse_int(name, value)
    if len(args) > 2 and args[2]:
        fields["enlarge"] = parse_bool(name, args[2])
    if len(args) > 3 and args[3]:
        _extend(fields, name, args[3:])


def _zoom(fields: Fields, name: str, args: list[str]) -> None:
    _at_most(name, args, 2)
    fields["zoom_x"] = parse_float(name, args[0], zero=False)
    fields["zoom_y"] = parse_float(name, args[1], zero=False) if len(args) > 1 else fields["zoom_x"]


def _extend(fields: Fields, name: str, args: list[str]) -> None:
    _at_most(name, args, 4)
    fields["extend"] = parse_bool(name, args[0])
    if len(args) > 1:
        fields["extend_gravity"] = parse_gravity(
            name, args[1:], fields["extend_gravity"], smart=False
        )


def parse_gravity(name: str, args: list[str], previous: Gravity, *, smart: bool = True) -> Gravity:
    """imgproxy's gravity arguments, `type[:x[:y]]`: an offset left out keeps the one set
    before (as imgproxy does); sm (where `smart`) takes none, fp exactly two, each in 0..1."""
    kind = args[0]
    allowed = (*_COMPASS, *(("sm",) if smart else ()), "fp")
    if kind not in allowed:
        raise _bad(name, kind, "a gravity (" + ", ".join(allowed) + ")")
    gravity_type: GravityType = kind  # type: ignore[assignment]  # one of `allowed`
    if gravity_type == "sm":
        _at_most(name, args, 1)
        return Gravity("sm")
    if gravity_type == "fp" and len(args) != 3:
        raise InvalidRequestError(f"option {name}: fp takes x and y ({name}:fp:0.5:0.5)")
    _at_most(name, args, 3)
    x, y = previous.x, previous.y
    low = 0.0 if gravity_type == "fp" else -math.inf
    if len(args) > 1 and args[1]:
        x = _offset(name, args[1], low, gravity_type)
    if len(args) > 2 and args[2]:
        y = _offset(name, args[2], low, gravity_type)
    return Gravity(gravity_type, x, y)


def _offset(name: str, value: str, low: float, kind: str) -> float:
    if not _FLOAT.fullmatch(value) or not math.isfinite(number := float(value)):
        raise _bad(name, value, "a number")
    if kind == "fp" and not low <= number <= 1:
        raise _bad(name, value, "a focus point coordinate in 0..1")
    return number


def _gravity(fields: Fields, name: str, args: list[str]) -> None:
    fields["gravity"] = parse_gravity(name, args, fields["gravity"])


def _crop(fields: Fields, name: str, args: list[str]) -> None:
    fields["crop_width"] = parse_float(name, args[0])
    if len(args) > 1:
        fields["crop_height"] = parse_float(name, args[1])
    if len(args) > 2:
        previous = fields["crop_gravity"] or Gravity()
        fields["crop_gravity"] = parse_gravity(name, args[2:], previous)


def _rotate(name: str, value: str) -> int:
    angle = parse_int(name, value, low=None)
    if angle % 90:
        raise _bad(name, value, "a multiple of 90")
    return angle


def _background(fields: Fields, name: str, args: list[str]) -> None:
    if len(args) == 1:
        value = args[0]
        if not value:
            fields["background"] = None  # no argument: no background, as imgproxy
            return
        if not _HEX.fullmatch(value):
            raise _bad(name, value, "a hex colour (rgb or rrggbb)")
        wide = value if len(value) == 6 else "".join(c * 2 for c in value)
        fields["background"] = tuple(int(wide[i : i + 2], 16) for i in (0, 2, 4))
        return
    if len(args) != 3:
        raise InvalidRequestError(f"option {name} takes a hex colour or r:g:b")
    fields["background"] = tuple(parse_int(name, value, 0, 255) for value in args)


def _output_format(name: str, value: str) -> OutputFormat | str:
    fmt = _FORMATS.get(value)
    if fmt is None:
        raise _bad(name, value, "a format imgpipe writes (jpeg, jpg, png, webp, avif, best)")
    return fmt


def _format_quality(fields: Fields, name: str, args: list[str]) -> None:
    if len(args) % 2:
        raise InvalidRequestError(f"option {name}: a quality is missing for {args[-1]!r}")
    pairs = dict(fields["format_quality"])
    for fmt_name, value in zip(args[::2], args[1::2], strict=True):
        fmt = _output_format(name, fmt_name)
        if fmt == "best":
            raise _bad(name, fmt_name, "an image format")
        pairs[fmt] = parse_int(name, value, 0, 100)
    fields["format_quality"] = tuple((f, q) for f, q in pairs.items() if q)


def _cachebuster(fields: Fields, name: str, args: list[str]) -> None:
    _at_most(name, args, 1)
    fields["cachebuster"] = args[0]


def _quality(name: str, value: str) -> int:
    return parse_int(name, value, 0, 100)


_HANDLERS: dict[str, Callable[[Fields, str, list[str]], None]] = {}
for _names, _handler in (
    (("resize", "rs"), _resize),
    (("size", "s"), _size),
    (("resizing_type", "rt"), _one(_resizing_type, "resizing_type")),
    (("width", "w"), _one(parse_int, "width")),
    (("height", "h"), _one(parse_int, "height")),
    (("min-width", "mw"), _one(parse_int, "min_width")),
    (("min-height", "mh"), _one(parse_int, "min_height")),
    (("zoom", "z"), _zoom),
    (("dpr",), _one(lambda n, v: parse_float(n, v, zero=False), "dpr")),
    (("enlarge", "el"), _one(parse_bool, "enlarge")),
    (("extend", "ex"), _extend),
    (("gravity", "g"), _gravity),
    (("crop", "c"), _crop),
    (("auto_rotate", "ar"), _one(parse_bool, "auto_rotate")),
    (("rotate", "rot"), _one(_rotate, "rotate")),
    (("background", "bg"), _background),
    (("blur", "bl"), _one(parse_float, "blur")),
    (("sharpen", "sh"), _one(parse_float, "sharpen")),
    (("pixelate", "pix"), _one(parse_int, "pixelate")),
    (("strip_metadata", "sm"), _one(parse_bool, "strip_metadata")),
    (("quality", "q"), _one(_quality, "quality")),
    (("format_quality", "fq"), _format_quality),
    (("format", "f", "ext"), _one(_output_format, "format")),
    (("cachebuster", "cb"), _cachebuster),
):
    for _name in _names:
        _HANDLERS[_name] = _handler
