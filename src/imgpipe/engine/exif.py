"""EXIF: the orientation, the record's curated subset (GPS only when kept), and GPS removed
from renditions that keep their EXIF.

Read with Pillow's EXIF parser, which is imported on first use. A broken block never fails
an image: whatever can be read is kept, and what cannot is left out.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from imgpipe.engine.vips import VipsImage, get, vips

_T = TypeVar("_T")

IFD_EXIF = 0x8769
IFD_GPS = 0x8825
TAG_ORIENTATION = 0x0112
# XMP's orientation, as an attribute (tiff:Orientation="6") or an element (<tiff:Orientation>6<):
# the same pattern Pillow's exif_transpose reads.
_XMP_ORIENTATION = re.compile(rb'tiff:Orientation(?:="|>)([1-8])')


def load_exif(raw: bytes) -> Any:
    """An EXIF block as Pillow's Image.Exif."""
    from PIL import Image

    exif = Image.Exif()
    exif.load(raw)
    return exif


def valid_orientation(value: Any) -> int:
    """An EXIF orientation, 1 to 8; anything else counts as 1 (upright)."""
    try:
        orientation = int(value)
    except (TypeError, ValueError):
        return 1
    return orientation if 1 <= orientation <= 8 else 1


def exif_orientation(raw: bytes | None) -> int:
    """The orientation an EXIF block says, 1 if it says none or cannot be read."""
    if not raw:
        return 1
    try:
        with warnings.catch_warnings(action="ignore"):
            return valid_orientation(load_exif(raw).get(TAG_ORIENTATION, 1))
    except Exception:
        return 1


def xmp_orientation(raw: bytes | None) -> int:
    """The orientation an XMP packet says (tiff:Orientation), 1 if it says none."""
    found = _XMP_ORIENTATION.search(bytes(raw)) if raw else None
    return int(found.group(1)) if found else 1


def exif_fields(raw: bytes | None, *, keep_gps: bool) -> dict[str, Any] | None:
    """The curated EXIF subset by field name (model.Exif's), only those present; None if none
    are. Whatever can be read from a broken block, never an error."""
    if not raw:
        return None
    with warnings.catch_warnings(action="ignore"):
        try:
            exif = load_exif(raw)
        except Exception:
            return None
        ifd0: dict[int, Any] = _safe(lambda: dict(exif.items())) or {}
        sub: dict[int, Any] = _safe(lambda: dict(exif.get_ifd(IFD_EXIF))) or {}
        gps: dict[int, Any] = {}
        if keep_gps:
            gps = _safe(lambda: dict(exif.get_ifd(IFD_GPS))) or {}
        fields: dict[str, Any] = {
            "make": _safe(lambda: _text(ifd0.get(0x010F))),
            "model": _safe(lambda: _text(ifd0.get(0x0110))),
            "lens": _safe(lambda: _text(sub.get(0xA434))),
            "taken_at": _safe(lambda: taken_at(sub.get(0x9003), sub.get(0x9011))),
            "exposure_time": _safe(lambda: exposure(sub.get(0x829A))),
            "f_number": _safe(lambda: _number(sub.get(0x829D))),
            "iso": _safe(lambda: _iso(sub.get(0x8827))),
            "focal_length": _safe(lambda: _number(sub.get(0x920A))),
            "gps": _safe(lambda: _gps(gps)) if keep_gps else None,
        }
    present = {name: value for name, value in fields.items() if value is not None}
    return present or None


def without_gps(image: VipsImage) -> VipsImage:
    """Renditions that keep EXIF still lose GPS unless the config keeps it: drop the GPS IFD
    from the EXIF block and the exif-ifd3-* fields libvips would write back from."""
    image = image.copy()
    for name in image.get_fields():
        if name.startswith("exif-ifd3-"):
            image.remove(name)
    raw = get(image, "exif-data", None)
    if raw:
        try:
            with warnings.catch_warnings(action="ignore"):
                exif = load_exif(bytes(raw))
                del exif[IFD_GPS]
                cleaned = b"Exif\x00\x00" + exif.tobytes()
            image.set_type(vips().GValue.blob_type, "exif-data", cleaned)
        except Exception:
            image.remove("exif-data")  # unreadable: drop it rather than leak a location
    return image


def _safe(read: Callable[[], _T]) -> _T | None:
    try:
        return read()
    except Exception:
        return None


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    text = value.replace("\x00", "").strip()
    return text[:200] or None


def _number(value: Any) -> float | None:
    if isinstance(value, tuple | list):
        value = value[0] if value else None
    if value is None:
        return None
    number = float(value)
    return round(number, 2) if math.isfinite(number) and number > 0 else None


def _iso(value: Any) -> int | None:
    if isinstance(value, tuple | list):
        value = value[0] if value else None
    if value is None:
        return None
    iso = int(value)
    return iso if iso > 0 else None


def exposure(value: Any) -> str | None:
    """ExposureTime as "1/250" for fractions of a second, "2" or "0.5" otherwise."""
    if isinstance(value, tuple | list):
        value = value[0] if value else None
    seconds = _number(value)
    if seconds is None:
        return None
    numerator = getattr(value, "numerator", None)
    denominator = getattr(value, "denominator", None)
    if numerator == 1 and isinstance(denominator, int) and denominator > 1:
        return f"1/{denominator}"
    exact = float(value)
    if exact < 0.25:
        return f"1/{round(1 / exact)}"
    return f"{round(exact, 4):g}"


def _numbers(text: str, separator: str, digits: tuple[int, ...]) -> list[int]:
    """Decimal numbers of exactly these many digits between `separator`s; ValueError for
    anything else."""
    parts = text.split(separator)
    if [len(part) for part in parts] != list(digits) or not all(
        part.isascii() and part.isdigit() for part in parts
    ):
        raise ValueError(f"not numbers of {digits} digits between {separator!r}: {text!r}")
    return [int(part) for part in parts]


def taken_at(original: Any, offset: Any) -> str | None:
    """DateTimeOriginal "YYYY:MM:DD HH:MM:SS" (+ OffsetTimeOriginal) as ISO-8601; ValueError
    for what is not an EXIF date."""
    text = _text(original)
    if text is None:
        return None
    # Read by hand: strptime imports _strptime, calendar and locale for this one format, 0.4 MB
    # in every rendering process. datetime() checks the ranges (month 13, 30 February).
    day, _, clock = text[:19].partition(" ")
    year, month, date = _numbers(day, ":", (4, 2, 2))
    hour, minute, second = _numbers(clock, ":", (2, 2, 2))
    taken = datetime(year, month, date, hour, minute, second)
    result = taken.isoformat()
    zone = _text(offset)
    if zone and len(zone) == 6 and zone[0] in "+-" and zone[3] == ":":
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours <= 14 and minutes < 60:
            result += zone
    return result


def _gps(gps: dict[int, Any]) -> dict[str, float] | None:
    lat = _degrees(gps.get(2), gps.get(1), "S")
    lon = _degrees(gps.get(4), gps.get(3), "W")
    if lat is None or lon is None or abs(lat) > 90 or abs(lon) > 180:
        return None
    result = {"lat": round(lat, 7), "lon": round(lon, 7)}
    alt = _safe(lambda: float(gps[6]))
    if alt is not None and math.isfinite(alt):
        below = gps.get(5) in (1, b"\x01")
        result["alt"] = round(-alt if below else alt, 2)
    return result


def _degrees(value: Any, ref: Any, negative: str) -> float | None:
    if not isinstance(value, tuple | list) or not value:
        return None
    parts = [float(part) for part in value[:3]]
    if not all(math.isfinite(part) for part in parts):
        return None
    degrees = sum(part / 60.0**i for i, part in enumerate(parts))
    return -degrees if _text(ref) == negative else degrees
