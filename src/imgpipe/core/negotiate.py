"""Format negotiation: which output format a request's `Accept` header gets, when its URL
names none (the `/img` route, and a rendition asked for without an extension).

Browsers announce AVIF and WebP in `Accept` when they ask for an image (`<img src>`), and
never JPEG or PNG, which every browser decodes: so a request falls into one of three
variants, AVIF, WebP or neither, and the answer depends on the variant alone. A cache in
front keys on the variant (`Vary: Accept`, normalised to these three), not on the raw header,
whose spellings are many.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from imgpipe.core.formats import OutputFormat

Variant = Literal["avif", "webp", "default"]
VARIANTS: tuple[Variant, ...] = ("avif", "webp", "default")
# The order of preference among formats a client takes: the smallest for the same quality first.
PREFERENCE: tuple[OutputFormat, ...] = ("avif", "webp", "jpeg", "png")
_MAX_ACCEPT_CHARS = 4096


def accepted_modern(accept: str) -> frozenset[OutputFormat]:
    """The modern formats (AVIF, WebP) that `accept` names with a quality above 0. Wildcards
    (`image/*`, `*/*`) do not count: old browsers send them and cannot decode either."""
    found: set[OutputFormat] = set()
    for item in accept[:_MAX_ACCEPT_CHARS].split(","):
        media, *params = (part.strip() for part in item.split(";"))
        media = media.lower()
        if media not in ("image/avif", "image/webp") or _quality(params) <= 0:
            continue
        found.add("avif" if media == "image/avif" else "webp")
    return frozenset(found)


def _quality(params: Iterable[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value.strip())
            except ValueError:
                return 0.0  # a malformed q: as good as not naming the type
    return 1.0


def variant(accept: str | None) -> Variant:
    """The variant of `accept`: AVIF where it takes AVIF, else WebP where it takes WebP,
    else the default (JPEG, or PNG for an image with transparency)."""
    modern = accepted_modern(accept or "")
    if "avif" in modern:
        return "avif"
    if "webp" in modern:
        return "webp"
    return "default"


def choose(accept_variant: Variant, has_alpha: bool) -> OutputFormat:
    """The format a transform is written in for a client of `accept_variant`."""
    if accept_variant != "default":
        return accept_variant
    return "png" if has_alpha else "jpeg"


def choose_among(available: Iterable[OutputFormat], accept_variant: Variant) -> OutputFormat:
    """Of the formats a rendition exists in, the one a client of `accept_variant` gets: the
    first of PREFERENCE that it takes (JPEG and PNG, it always takes), else the first there is.
    """
    formats = list(available)
    if not formats:
        raise ValueError("no format to choose from")
    takes = {"jpeg", "png", *([accept_variant] if accept_variant != "default" else [])}
    if accept_variant == "avif":
        takes.add("webp")  # AVIF's browsers all take WebP too
    for fmt in PREFERENCE:
        if fmt in formats and fmt in takes:
            return fmt
    return formats[0]


def best_formats(accept_variant: Variant, has_alpha: bool) -> tuple[OutputFormat, ...]:
    """What `format:best` may pick from for such a client: the formats it takes."""
    legacy: OutputFormat = "png" if has_alpha else "jpeg"
    if accept_variant == "avif":
        return ("avif", "webp", legacy)
    if accept_variant == "webp":
        return ("webp", legacy)
    return (legacy,)
