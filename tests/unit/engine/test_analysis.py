"""The analysis: pHash, BlurHash and the dominant colour, against their definitions and a
reference decoder, and bit for bit against their first implementation in numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

import imagegen as gen
from engine_support import ALL_FORMATS, DEFAULTS, close, hamming, options
from imgpipe.engine import analysis, probe, render


def pixels(rgb: np.ndarray) -> analysis.Pixels:
    height, width = rgb.shape[:2]
    return analysis.Pixels(width, height, rgb.astype(np.uint8).tobytes())


def test_phash_matches_a_naive_dct_definition() -> None:
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    luma = rgb.astype(float) @ np.array([0.299, 0.587, 0.114])
    coefficients = np.zeros((8, 8))
    for u in range(8):
        for v in range(8):
            total = 0.0
            for x in range(32):
                for y in range(32):
                    total += (
                        luma[x, y]
                        * math.cos(math.pi * (2 * x + 1) * u / 64)
                        * math.cos(math.pi * (2 * y + 1) * v / 64)
                    )
            coefficients[u, v] = total
    bits = "".join("1" if c > np.median(coefficients) else "0" for c in coefficients.flatten())
    assert analysis.phash(pixels(rgb)) == f"{int(bits, 2):016x}"


def test_phash_is_stable_across_formats_and_differs_between_pictures() -> None:
    picture = gen.photo_pixels(300, 200)
    as_png = gen._save(picture, "PNG")
    as_jpeg = gen._save(picture, "JPEG", quality=70)
    other = gen._save(Image.fromarray(np.asarray(picture)[::-1, ::-1].copy()), "PNG")
    hashes = [probe(data, DEFAULTS).phash for data in (as_png, as_jpeg, other)]
    assert all(h is not None and len(h) == 16 for h in hashes)
    assert hamming(hashes[0], hashes[1]) <= 4  # type: ignore[arg-type]
    assert hamming(hashes[0], hashes[2]) >= 16  # type: ignore[arg-type]


_B83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"


def to_srgb(value: float) -> int:
    """BlurHash's linear-to-sRGB step, as the reference encoder and decoder write it."""
    v = max(0.0, min(1.0, value))
    if v <= 0.0031308:
        return int(v * 12.92 * 255 + 0.5)
    return int((1.055 * v ** (1 / 2.4) - 0.055) * 255 + 0.5)


def decode_blurhash(blurhash: str, width: int, height: int) -> np.ndarray:
    """The reference decoder (woltapp/blurhash, TypeScript), transcribed."""

    def b83(text: str) -> int:
        value = 0
        for char in text:
            value = value * 83 + _B83.index(char)
        return value

    def to_linear(value: int) -> float:
        v = value / 255
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    size_flag = b83(blurhash[0])
    ny, nx = size_flag // 9 + 1, size_flag % 9 + 1
    assert len(blurhash) == 4 + 2 * nx * ny
    maximum = (b83(blurhash[1]) + 1) / 166
    dc = b83(blurhash[2:6])
    colours = [(to_linear(dc >> 16), to_linear((dc >> 8) & 255), to_linear(dc & 255))]
    for i in range(1, nx * ny):
        value = b83(blurhash[4 + i * 2 : 6 + i * 2])
        quantised = (value // (19 * 19), (value // 19) % 19, value % 19)
        colours.append(tuple(math.copysign(((q - 9) / 9) ** 2, q - 9) * maximum for q in quantised))
    out = np.zeros((height, width, 3), dtype=np.uint8)
    for y in range(height):
        for x in range(width):
            pixel = [0.0, 0.0, 0.0]
            for j in range(ny):
                for i in range(nx):
                    basis = math.cos(math.pi * x * i / width) * math.cos(math.pi * y * j / height)
                    for c in range(3):
                        pixel[c] += colours[i + j * nx][c] * basis
            out[y, x] = [to_srgb(v) for v in pixel]
    return out


def test_blurhash_of_a_flat_colour() -> None:
    rgb = np.zeros((32, 32, 3), dtype=np.uint8)
    rgb[:, :] = (255, 128, 0)
    blurhash = analysis.blurhash(pixels(rgb))
    assert blurhash[0] == "L"  # 4x3 components
    assert len(blurhash) == 28
    # The DC term alone is the average colour
    assert close(decode_blurhash(blurhash[:6] + "fQ" * 11, 1, 1)[0, 0], (255, 128, 0), 1)
    # The whole hash decodes to about that colour (BlurHash's basis is not quite orthogonal
    # on a pixel grid, so a flat image has small AC terms: the reference encoder does that too)
    picture = decode_blurhash(blurhash, 8, 8).reshape(-1, 3).astype(float)
    assert np.abs(picture - (255, 128, 0)).mean() < 8


def test_blurhash_decodes_to_the_picture_with_a_reference_decoder() -> None:
    # GIVEN red on top and blue at the bottom, upright
    result = render(gen.two_tone_jpeg(64, 48, 1), options(ALL_FORMATS))
    blurhash = result.metadata.blurhash
    assert blurhash is not None
    assert len(blurhash) == 28
    # WHEN decoded by the reference algorithm THEN the top is red and the bottom blue
    picture = decode_blurhash(blurhash, 16, 12)
    top, bottom = picture[1, 8], picture[10, 8]
    assert top[0] > 150 > top[2]
    assert bottom[2] > 150 > bottom[0]
    # and the average colour (the DC term alone) is the mean of the linear-light pixels:
    # half red, half blue is linear (0.5, 0, 0.5), which is sRGB (188, 0, 188)
    average = decode_blurhash(blurhash[:6] + "fQ" * 11, 2, 2)[0, 0]
    assert close(average, (188, 0, 188), 10)


def test_dominant_colour() -> None:
    image = Image.new("RGB", (64, 64), (20, 120, 220))
    image.paste((250, 250, 250), (0, 0, 20, 64))  # less than a third is white
    result = probe(gen._save(image, "PNG"), DEFAULTS)
    assert result.dominant_color is not None
    assert close(bytes.fromhex(result.dominant_color[1:]), (20, 120, 220), 4)


def test_dominant_colour_ignores_transparent_pixels() -> None:
    # Mostly transparent green, a red opaque half: red is what a user sees
    assert probe(gen.rgba_png(40, 40), DEFAULTS).dominant_color == "#ff0000"


# The analysis' first implementation, in numpy. A rendering process no longer imports numpy
# (12 MB of RSS, and its import in every cold start); the pure-Python code must give the same
# answers, bit for bit, on pictures without exact ties.


def numpy_phash(rgb: np.ndarray) -> str:
    size = rgb.shape[0]
    luma = rgb[:, :, :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    n = np.arange(size)
    basis = np.cos(np.pi * (2 * n[None, :] + 1) * n[:, None] / (2 * size))
    low = (basis @ luma @ basis.T)[:8, :8]
    return f"{int(''.join('1' if b else '0' for b in (low > np.median(low)).flatten()), 2):016x}"


def numpy_blurhash(rgb: np.ndarray) -> str:
    """The reference encoder's steps (woltapp/blurhash) over numpy's factors, 4x3."""

    def b83(value: int, length: int) -> str:
        return "".join(_B83[(value // 83 ** (length - i - 1)) % 83] for i in range(length))

    factors = [[float(v) for v in f] for f in numpy_blurhash_factors(rgb)]
    dc, ac = factors[0], factors[1:]
    quantised_max = int(max(0, min(82, math.floor(max(abs(v) for f in ac for v in f) * 166 - 0.5))))
    maximum = (quantised_max + 1) / 166
    out = b83(3 + 2 * 9, 1) + b83(quantised_max, 1)
    out += b83((to_srgb(dc[0]) << 16) + (to_srgb(dc[1]) << 8) + to_srgb(dc[2]), 4)
    for f in ac:
        r, g, b = (
            int(max(0, min(18, math.floor(math.copysign(abs(v / maximum) ** 0.5, v) * 9 + 9.5))))
            for v in f
        )
        out += b83(r * 19 * 19 + g * 19 + b, 2)
    return out


def numpy_blurhash_factors(rgb: np.ndarray, nx: int = 4, ny: int = 3) -> list[np.ndarray]:
    height, width = rgb.shape[:2]
    v = rgb.astype(np.float64) / 255.0
    linear = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    xs, ys = np.arange(width) / width, np.arange(height) / height
    factors = []
    for j in range(ny):
        for i in range(nx):
            basis = np.outer(np.cos(np.pi * j * ys), np.cos(np.pi * i * xs))
            scale = (1.0 if i == 0 and j == 0 else 2.0) / (width * height)
            factors.append((basis[:, :, None] * linear).sum(axis=(0, 1)) * scale)
    return factors


def numpy_dominant(rgb: np.ndarray, alpha: np.ndarray | None) -> str:
    flat = rgb.reshape(-1, 3)
    if alpha is not None and (alpha.reshape(-1) >= 128).any():
        flat = flat[alpha.reshape(-1) >= 128]
    buckets = flat.astype(np.int64) >> 5
    index = (buckets[:, 0] << 6) | (buckets[:, 1] << 3) | buckets[:, 2]
    best = int(np.bincount(index, minlength=512).argmax())
    red, green, blue = (round(float(v)) for v in flat[index == best].mean(axis=0))
    return f"#{red:02x}{green:02x}{blue:02x}"


def numpy_composite(rgb: np.ndarray, alpha: np.ndarray, background: tuple[int, int, int]) -> bytes:
    weight = alpha.astype(np.float64)[:, :, None] / 255.0
    mixed = rgb * weight + np.asarray(background, dtype=np.float64) * (1.0 - weight)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8).tobytes()


def analysis_picture(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """32x32: smooth gradients with a little noise (a photo shrunk that far), or pure noise."""
    rng = np.random.default_rng(seed)
    if seed % 2:
        rgb = rng.integers(0, 256, (32, 32, 3))
    else:
        y, x = np.mgrid[0:32, 0:32]
        base = rng.uniform(0, 255, 3) + rng.uniform(-4, 4, 3) * (x + y)[:, :, None]
        rgb = np.clip(base + rng.normal(0, 6, (32, 32, 3)), 0, 255)
    alpha = rng.choice([0, 40, 127, 128, 200, 255], (32, 32))
    return rgb.astype(np.uint8), alpha.astype(np.uint8)


@pytest.mark.parametrize("seed", range(16))
def test_the_analysis_gives_what_its_numpy_definition_gives(seed: int) -> None:
    rgb, alpha = analysis_picture(seed)
    assert analysis.phash(pixels(rgb)) == numpy_phash(rgb)
    assert analysis.blurhash(pixels(rgb)) == numpy_blurhash(rgb)
    assert analysis.dominant_color(pixels(rgb)) == numpy_dominant(rgb, None)
    assert analysis.dominant_color(pixels(rgb), alpha.tobytes()) == numpy_dominant(rgb, alpha)
    flat = analysis.composite(pixels(rgb), alpha.tobytes(), (250, 3, 128))
    assert flat.rgb == numpy_composite(rgb, alpha, (250, 3, 128))


def test_the_dominant_colour_of_a_fully_transparent_picture_counts_every_pixel() -> None:
    rgb, _ = analysis_picture(2)
    clear = bytes(32 * 32)
    assert analysis.dominant_color(pixels(rgb), clear) == numpy_dominant(rgb, None)


@pytest.mark.parametrize("bands", [1, 2, 3, 4])
def test_the_analysis_pixels_of_each_band_layout(bands: int) -> None:
    import pyvips

    rng = np.random.default_rng(bands)
    source = rng.integers(0, 256, (40, 50, bands), dtype=np.uint8)
    image = pyvips.Image.new_from_memory(source.tobytes(), 50, 40, bands, "uchar")
    got, alpha = analysis.analysis_pixels(image)
    small = image.thumbnail_image(32, height=32, size="force", no_rotate=True)
    want = np.frombuffer(small.write_to_memory(), np.uint8).reshape(32, 32, bands)
    colour = 1 if bands <= 2 else 3
    rgb = np.repeat(want[:, :, :1], 3, axis=2) if colour == 1 else want[:, :, :3]
    assert (got.width, got.height) == (32, 32)
    assert got.rgb == rgb.tobytes()
    assert alpha == (want[:, :, colour].tobytes() if bands in (2, 4) else None)
