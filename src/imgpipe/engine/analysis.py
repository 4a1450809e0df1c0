"""The analysis in a record's metadata: pHash, BlurHash and the dominant colour of an image.

All three are computed from one 32x32 picture (`analysis_pixels`), in pure Python: a rendering
process imports no numpy (tests/unit/engine/test_analysis.py checks the answers against a numpy
definition, bit for bit). Sums use math.fsum, so that the hashes are the same bits everywhere.
"""

from __future__ import annotations

import functools
import math
import operator
from collections import Counter
from collections.abc import Iterable
from typing import NamedTuple

from imgpipe.engine.vips import VipsImage

# phash, blurhash and the dominant colour are computed from a 32x32 version.
ANALYSIS_SIZE = 32
BLURHASH_COMPONENTS = (4, 3)


class Pixels(NamedTuple):
    """A small 8-bit RGB picture for the metadata's analysis: row-major, 3 bytes a pixel."""

    width: int
    height: int
    rgb: bytes


def analysis_pixels(image: VipsImage) -> tuple[Pixels, bytes | None]:
    """A 32x32 RGB picture (and its alpha, if any) from an in-memory 8-bit image."""
    small = image.thumbnail_image(ANALYSIS_SIZE, height=ANALYSIS_SIZE, size="force", no_rotate=True)
    bands = int(small.bands)
    raw = bytes(small.write_to_memory())
    width, height = int(small.width), int(small.height)
    if bands == 3:
        return Pixels(width, height, raw), None
    colour_bands = 1 if bands <= 2 else 3
    rgb = bytearray(width * height * 3)
    for c in range(3):  # a grey picture's one band, three times
        rgb[c::3] = raw[min(c, colour_bands - 1) :: bands]
    alpha = raw[colour_bands::bands] if bands in (2, 4) else None
    return Pixels(width, height, bytes(rgb)), alpha


def composite(pixels: Pixels, alpha: bytes | None, background: tuple[int, int, int]) -> Pixels:
    """The pixels as a JPEG rendition shows them: alpha flattened onto the background."""
    if alpha is None:
        return pixels
    weights = [a / 255.0 for a in alpha]
    mixed = bytearray(len(pixels.rgb))
    for c in range(3):
        back = float(background[c])
        mixed[c::3] = bytes(
            min(255, max(0, round(v * w + back * (1.0 - w))))
            for v, w in zip(pixels.rgb[c::3], weights, strict=True)
        )
    return Pixels(pixels.width, pixels.height, bytes(mixed))


def _dot(a: Iterable[float], b: Iterable[float]) -> float:
    # fsum: exactly rounded, so the hashes are the same bits on every platform and Python
    return math.fsum(map(operator.mul, a, b))


@functools.cache
def _dct_basis(size: int) -> tuple[tuple[float, ...], ...]:
    """DCT-II's first 8 cosine rows over `size` samples."""
    return tuple(
        tuple(math.cos(math.pi * (2 * n + 1) * u / (2 * size)) for n in range(size))
        for u in range(8)
    )


@functools.cache
def _cosines(components: int, size: int) -> tuple[tuple[float, ...], ...]:
    """BlurHash's basis along one side: cos(pi * k * position / size), k < components."""
    return tuple(
        tuple(math.cos(math.pi * k * (n / size)) for n in range(size)) for k in range(components)
    )


def phash(pixels: Pixels) -> str:
    """64-bit DCT perceptual hash, 16 hex digits; the definition of the `imagehash` package.

    Luma (ITU-R 601: 0.299 R + 0.587 G + 0.114 B) of a 32x32 image, 2-D DCT-II (unscaled),
    the top-left 8x8 low frequencies including the DC term, each bit = coefficient > their
    median, row-major, first bit most significant. Compare hashes by Hamming distance.
    """
    size = pixels.height
    if pixels.width != size:
        raise ValueError(f"phash needs a square picture, not {pixels.width}x{size}")
    rgb = pixels.rgb
    luma = [
        r * 0.299 + g * 0.587 + b * 0.114
        for r, g, b in zip(rgb[0::3], rgb[1::3], rgb[2::3], strict=True)
    ]
    columns = [luma[y::size] for y in range(size)]
    basis = _dct_basis(size)
    # (basis @ luma)[u][y], then (... @ basis.T)[u][v]: only the 8x8 that the hash keeps
    rows = [[_dot(basis_u, column) for column in columns] for basis_u in basis]
    low = [_dot(row, basis_v) for row in rows for basis_v in basis]
    ordered = sorted(low)  # statistics.median's arithmetic, without its imports (0.7 MB)
    median = (ordered[len(ordered) // 2 - 1] + ordered[len(ordered) // 2]) / 2
    value = 0
    for coefficient in low:
        value = (value << 1) | (coefficient > median)
    return f"{value:016x}"


_BASE83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"


def _base83(value: int, length: int) -> str:
    return "".join(_BASE83[(value // 83 ** (length - i - 1)) % 83] for i in range(length))


def _srgb_to_linear(value: int) -> float:
    v = value / 255.0
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


_LINEAR = tuple(_srgb_to_linear(value) for value in range(256))


def _linear_to_srgb(value: float) -> int:
    v = min(1.0, max(0.0, value))
    if v <= 0.0031308:
        return int(v * 12.92 * 255 + 0.5)
    return int((1.055 * v ** (1 / 2.4) - 0.055) * 255 + 0.5)


def blurhash(pixels: Pixels, x_components: int = 4, y_components: int = 3) -> str:
    """The BlurHash (woltapp/blurhash reference encoder) of an sRGB image."""
    width, height = pixels.width, pixels.height
    cos_x = _cosines(x_components, width)
    cos_y = _cosines(y_components, height)
    # per channel: each row against each horizontal basis, then those sums down the columns
    sums: list[list[list[float]]] = []  # [channel][i][y]
    for c in range(3):
        linear = [_LINEAR[v] for v in pixels.rgb[c::3]]
        rows = [linear[y * width : (y + 1) * width] for y in range(height)]
        sums.append([[_dot(cx, row) for row in rows] for cx in cos_x])
    factors: list[tuple[float, ...]] = []
    for j in range(y_components):
        for i in range(x_components):
            scale = (1.0 if i == 0 and j == 0 else 2.0) / (width * height)
            factors.append(tuple(_dot(cos_y[j], sums[c][i]) * scale for c in range(3)))
    dc, ac = factors[0], factors[1:]
    out = _base83((x_components - 1) + (y_components - 1) * 9, 1)
    if ac:
        actual_max = max(abs(v) for factor in ac for v in factor)
        quantised_max = int(max(0, min(82, math.floor(actual_max * 166 - 0.5))))
        maximum = (quantised_max + 1) / 166
        out += _base83(quantised_max, 1)
    else:
        maximum = 1.0
        out += _base83(0, 1)
    out += _base83(
        (_linear_to_srgb(dc[0]) << 16) + (_linear_to_srgb(dc[1]) << 8) + _linear_to_srgb(dc[2]), 4
    )
    for factor in ac:
        r, g, b = (
            int(max(0, min(18, math.floor(_sign_pow(v / maximum, 0.5) * 9 + 9.5)))) for v in factor
        )
        out += _base83(r * 19 * 19 + g * 19 + b, 2)
    return out


def _sign_pow(value: float, exponent: float) -> float:
    return math.copysign(abs(value) ** exponent, value)


def dominant_color(pixels: Pixels, alpha: bytes | None = None) -> str:
    """Hex "#rrggbb": the mean of the most populated 8x8x8 colour bucket of the opaque pixels."""
    rgb = pixels.rgb
    triples = list(zip(rgb[0::3], rgb[1::3], rgb[2::3], strict=True))
    if alpha is not None:
        opaque = [t for t, a in zip(triples, alpha, strict=True) if a >= 128]
        if opaque:
            triples = opaque
    buckets = [(r >> 5) << 6 | (g >> 5) << 3 | b >> 5 for r, g, b in triples]
    counts = Counter(buckets)
    top = max(counts.values())
    best = min(bucket for bucket, n in counts.items() if n == top)  # as argmax: the lowest
    members = [t for t, bucket in zip(triples, buckets, strict=True) if bucket == best]
    red, green, blue = (round(sum(t[c] for t in members) / len(members)) for c in range(3))
    return f"#{red:02x}{green:02x}{blue:02x}"
