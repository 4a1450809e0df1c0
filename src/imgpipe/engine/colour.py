"""Colour: every decoded image becomes 8-bit sRGB (grey stays grey) without its ICC profile,
and alpha is flattened onto the background where a format has none (JPEG).

An ICC-tagged image is converted to sRGB as it is decoded (`icc_options`); an untagged one is
taken as sRGB already: an sRGB export of an untagged image still runs a whole transform, which
changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imgpipe.engine.vips import VipsImage

if TYPE_CHECKING:
    from imgpipe.engine.header import Header


def icc_options(header: Header) -> dict[str, str]:
    """The thumbnail options that convert to sRGB: only for an image that carries a profile."""
    # On an untagged image an sRGB export still runs a transform (~140 ms): only when tagged.
    return {"export_profile": "srgb"} if header.has_icc else {}


def normalise(image: VipsImage) -> VipsImage:
    """8-bit sRGB, or 8-bit grey for grey sources; alpha kept; no ICC profile attached."""
    interpretation = str(image.interpretation)
    bands = int(image.bands)
    grey = bands in (1, 2) and interpretation in ("b-w", "grey16", "multiband")
    if interpretation == "multiband":
        image = image.copy(interpretation="b-w" if grey else "srgb")
        interpretation = str(image.interpretation)
    target = "b-w" if grey else "srgb"
    if interpretation != target or image.format != "uchar":
        image = image.colourspace(target)
    if image.format != "uchar":
        image = image.cast("uchar")
    wanted = 2 if grey else 4
    if image.bands > wanted:
        image = image.extract_band(0, n=wanted)
    if image.get_typeof("icc-profile-data"):
        image = image.copy()
        image.remove("icc-profile-data")
    return image


def flatten(image: VipsImage, background: tuple[int, int, int]) -> VipsImage:
    """JPEG has no alpha: composite onto the configured background colour."""
    if not image.hasalpha():
        return image
    red, green, blue = background
    if image.bands == 2:
        if red == green == blue:
            return image.flatten(background=[red])
        image = image.colourspace("srgb")
    return image.flatten(background=[red, green, blue])
