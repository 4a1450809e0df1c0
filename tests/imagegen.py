"""Test images made in code with Pillow (and pillow-heif for HEIC): nothing binary is committed.

Every generator returns the encoded bytes of a small image. The colours are chosen so that a
test can tell, from a decoded output, whether orientation, alpha and colour handling are right.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
from PIL import Image, ImageCms, ImageDraw
from PIL.TiffImagePlugin import IFDRational

RED = (255, 0, 0)
BLUE = (0, 0, 255)

# EXIF tag numbers used below.
TAG_MAKE, TAG_MODEL, TAG_ORIENTATION = 0x010F, 0x0110, 0x0112
IFD_EXIF, IFD_GPS = 0x8769, 0x8825
TAG_EXPOSURE, TAG_FNUMBER, TAG_ISO = 0x829A, 0x829D, 0x8827
TAG_DATETIME_ORIGINAL, TAG_OFFSET_ORIGINAL = 0x9003, 0x9011
TAG_FOCAL_LENGTH, TAG_LENS_MODEL = 0x920A, 0xA434

CAMERA = {
    "make": "Canon",
    "model": "Canon EOS R6",
    "lens": "RF24-105mm F4 L IS USM",
    "taken_at": "2024:05:17 14:03:22",
    "offset": "+02:00",
    "exposure": (1, 250),
    "f_number": (28, 10),
    "iso": 400,
    "focal_length": (35, 1),
}
# The Eiffel tower: 48deg 51' 30.24" N, 2deg 17' 40.2" E, 35 m.
GPS = {"lat": (48, 51, 30.24), "lat_ref": "N", "lon": (2, 17, 40.2), "lon_ref": "E", "alt": 35.0}


def _rational(value: float | tuple[int, int]) -> IFDRational:
    if isinstance(value, tuple):
        return IFDRational(*value)
    fraction = Fraction(value).limit_denominator(10_000)
    return IFDRational(fraction.numerator, fraction.denominator)


def exif_bytes(*, orientation: int = 1, camera: bool = True, gps: bool = False) -> bytes:
    """A TIFF-structured EXIF block with an orientation, camera tags and optionally GPS."""
    exif = Image.Exif()
    exif[TAG_ORIENTATION] = orientation
    if camera:
        exif[TAG_MAKE] = CAMERA["make"]
        exif[TAG_MODEL] = CAMERA["model"]
        sub = exif.get_ifd(IFD_EXIF)
        sub[TAG_LENS_MODEL] = CAMERA["lens"]
        sub[TAG_DATETIME_ORIGINAL] = CAMERA["taken_at"]
        sub[TAG_OFFSET_ORIGINAL] = CAMERA["offset"]
        sub[TAG_EXPOSURE] = _rational(CAMERA["exposure"])  # type: ignore[arg-type]
        sub[TAG_FNUMBER] = _rational(CAMERA["f_number"])  # type: ignore[arg-type]
        sub[TAG_ISO] = CAMERA["iso"]
        sub[TAG_FOCAL_LENGTH] = _rational(CAMERA["focal_length"])  # type: ignore[arg-type]
    if gps:
        gps_ifd = exif.get_ifd(IFD_GPS)
        gps_ifd[1] = GPS["lat_ref"]
        gps_ifd[2] = tuple(_rational(v) for v in GPS["lat"])  # type: ignore[union-attr]
        gps_ifd[3] = GPS["lon_ref"]
        gps_ifd[4] = tuple(_rational(v) for v in GPS["lon"])  # type: ignore[union-attr]
        gps_ifd[5] = 0
        gps_ifd[6] = _rational(GPS["alt"])  # type: ignore[arg-type]
    return exif.tobytes()


def photo_pixels(width: int, height: int, seed: int = 0) -> Image.Image:
    """Something photo-like: smooth gradients, a few shapes and a little noise."""
    if width * height > 400_000:
        # Big ones are upscaled from a quarter-size version: 10x faster, still photo-like.
        small = photo_pixels(max(1, width // 4), max(1, height // 4), seed)
        return small.resize((width, height), Image.Resampling.BICUBIC)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    red = 127 + 120 * np.sin(x / max(width, 1) * 3.1 + 0.3)
    green = 127 + 120 * np.cos(y / max(height, 1) * 2.3)
    blue = 127 + 100 * np.sin((x + y) / max(width + height, 1) * 5.0)
    noise = np.random.default_rng(seed).normal(0, 6, (height, width, 1))
    pixels = np.clip(np.dstack([red, green, blue]) + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 5, height // 5, width // 2, height // 2), fill=(240, 220, 30))
    draw.rectangle((width // 2, height // 2, width * 4 // 5, height * 9 // 10), fill=(20, 90, 40))
    return image


def photo_jpeg(
    width: int,
    height: int,
    *,
    orientation: int = 1,
    camera: bool = True,
    gps: bool = False,
    quality: int = 88,
) -> bytes:
    """A photo-like JPEG with EXIF (orientation, camera tags, optionally GPS)."""
    out = io.BytesIO()
    photo_pixels(width, height).save(
        out,
        "JPEG",
        quality=quality,
        exif=exif_bytes(orientation=orientation, camera=camera, gps=gps),
    )
    return out.getvalue()


def two_tone(width: int, height: int) -> Image.Image:
    """Stored pixels: the top half red, the bottom half blue."""
    image = Image.new("RGB", (width, height), RED)
    image.paste(BLUE, (0, height // 2, width, height))
    return image


def two_tone_jpeg(width: int, height: int, orientation: int) -> bytes:
    """Top half red / bottom half blue as stored, tagged with an EXIF `orientation`; once
    displayed upright, orientation 1 has red on top, 3 red at the bottom, 6 red on the right,
    8 red on the left."""
    out = io.BytesIO()
    two_tone(width, height).save(
        out, "JPEG", quality=95, exif=exif_bytes(orientation=orientation, camera=False)
    )
    return out.getvalue()


def rgba_png(width: int, height: int) -> bytes:
    """Left half opaque red, right half fully transparent (transparent green underneath)."""
    image = Image.new("RGBA", (width, height), (0, 255, 0, 0))
    image.paste((255, 0, 0, 255), (0, 0, width // 2, height))
    return _save(image, "PNG")


def palette_png(width: int, height: int) -> bytes:
    """A palette PNG with a transparent colour (tRNS): left red, right transparent."""
    image = Image.new("P", (width, height), 1)
    image.putpalette([255, 0, 0, 0, 255, 0])
    ImageDraw.Draw(image).rectangle((0, 0, width // 2 - 1, height), fill=0)
    return _save(image, "PNG", transparency=1)


def grey_jpeg(width: int, height: int) -> bytes:
    image = Image.fromarray(
        np.tile(np.linspace(0, 255, width, dtype=np.uint8), (height, 1)), mode="L"
    )
    return _save(image, "JPEG", quality=90)


def grey16_png(width: int, height: int) -> bytes:
    """16-bit greyscale: a horizontal ramp over the whole 0..65535 range."""
    ramp = np.tile(np.linspace(0, 65535, width).astype(np.uint16), (height, 1))
    return _png16(ramp[:, :, None], colour_type=0)


def rgb16_png(width: int, height: int, colour: Sequence[int] = (65535, 32768, 0)) -> bytes:
    """16-bit RGB (Pillow cannot write it: a tiny PNG writer does)."""
    pixels = np.empty((height, width, 3), dtype=np.uint16)
    pixels[:, :] = colour
    return _png16(pixels, colour_type=2)


def _png16(pixels: np.ndarray, colour_type: int) -> bytes:
    height, width = pixels.shape[:2]
    rows = pixels.astype(">u2").reshape(height, -1).tobytes()
    stride = len(rows) // height
    raw = b"".join(b"\x00" + rows[i * stride : (i + 1) * stride] for i in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def cmyk_jpeg(width: int, height: int, cmyk: tuple[int, int, int, int] = (0, 255, 255, 0)) -> bytes:
    """A CMYK JPEG without a profile; the default ink (no cyan, full magenta and yellow) is red."""
    return _save(Image.new("CMYK", (width, height), cmyk), "JPEG", quality=95)


def animated_gif(width: int, height: int, frames: int = 3) -> bytes:
    colours = [RED, (0, 255, 0), BLUE, (255, 255, 0)]
    images = [Image.new("RGB", (width, height), colours[i % len(colours)]) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return out.getvalue()


def tiff(width: int, height: int) -> bytes:
    return _save(photo_pixels(width, height), "TIFF", compression="tiff_lzw")


def webp(width: int, height: int) -> bytes:
    return _save(photo_pixels(width, height), "WEBP", quality=90)


def avif(width: int, height: int, *, orientation: int = 1) -> bytes:
    """AVIF written by Pillow; an EXIF orientation becomes the container's rotation."""
    return _save(
        two_tone(width, height) if orientation != 1 else photo_pixels(width, height),
        "AVIF",
        quality=90,
        exif=exif_bytes(orientation=orientation, camera=True),
    )


def heic(width: int, height: int, *, orientation: int = 1, alpha: bool = False) -> bytes:
    """HEIC (HEVC) via pillow-heif, the way iPhones write them: an EXIF orientation is turned
    into the container's rotation, and camera EXIF is kept."""
    import pillow_heif

    image = two_tone(width, height) if orientation != 1 else photo_pixels(width, height)
    if alpha:
        # the right half fully transparent
        mask = Image.new("L", image.size, 255)
        mask.paste(0, (width // 2, 0, width, height))
        image.putalpha(mask)
    out = io.BytesIO()
    pillow_heif.from_pillow(image).save(
        out, quality=90, exif=exif_bytes(orientation=orientation, camera=True)
    )
    return out.getvalue()


def display_p3_profile() -> bytes:
    """The Display P3 ICC profile, borrowed from libvips' built-in profiles."""
    import pyvips

    pixel = pyvips.Image.black(1, 1, bands=3).copy(interpretation="srgb").cast("uchar")
    return bytes(pixel.icc_transform("p3", input_profile="srgb").get("icc-profile-data"))


def p3_png(width: int, height: int, srgb: tuple[int, int, int]) -> bytes:
    """A Display-P3-tagged PNG whose pixels, converted back to sRGB, are `srgb` (Pillow's
    LittleCMS converts, so the check does not lean on libvips)."""
    profile = display_p3_profile()
    p3 = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    transform = ImageCms.buildTransform(ImageCms.createProfile("sRGB"), p3, "RGB", "RGB")
    image = ImageCms.applyTransform(Image.new("RGB", (width, height), srgb), transform)
    assert image is not None
    return _save(image, "PNG", icc_profile=profile)


def p3_heic(width: int, height: int, srgb: tuple[int, int, int]) -> bytes:
    """The same as p3_png, as a HEIC carrying the ICC profile."""
    import pillow_heif

    image = Image.open(io.BytesIO(p3_png(width, height, srgb)))
    out = io.BytesIO()
    pillow_heif.from_pillow(image).save(out, quality=95)
    return out.getvalue()


def truncated_jpeg(width: int = 300, height: int = 200, keep: float = 0.5) -> bytes:
    data = photo_jpeg(width, height, camera=False, quality=95)
    return data[: int(len(data) * keep)]


def claimed_size_jpeg(width: int, height: int) -> bytes:
    """A tiny valid JPEG whose SOF header is patched to claim `width` x `height`."""
    data = bytearray(_save(Image.new("RGB", (16, 16), RED), "JPEG"))
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = data.find(marker)
        if at >= 0:
            # marker(2) length(2) precision(1) height(2) width(2)
            struct.pack_into(">HH", data, at + 5, height, width)
            return bytes(data)
    raise AssertionError("no SOF marker found")


SVG = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
    b'<rect width="64" height="64" fill="red"/></svg>\n'
)
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)  # type: ignore[arg-type]
    return out.getvalue()
