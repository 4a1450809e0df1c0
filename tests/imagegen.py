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
    return png_bytes(width, height, zlib.compress(raw), bit_depth=16, colour_type=colour_type)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunk(kind: bytes, body: bytes, *, crc: int | None = None) -> bytes:
    """One PNG chunk; `crc` overrides the checksum (to make a wrong one)."""
    checksum = zlib.crc32(kind + body) & 0xFFFFFFFF if crc is None else crc
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", checksum)


def png_bytes(
    width: int,
    height: int,
    idat: bytes,
    *,
    bit_depth: int = 8,
    colour_type: int = 0,
    interlace: int = 0,
    before_idat: Sequence[bytes] = (),
    idat_crc: int | None = None,
) -> bytes:
    """A PNG assembled chunk by chunk around an already-deflated IDAT: the IHDR may claim
    anything, extra chunks (iCCP, tEXt...) go before the IDAT, and its CRC can be wrong."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, interlace)
    return (
        PNG_SIGNATURE
        + png_chunk(b"IHDR", header)
        + b"".join(before_idat)
        + png_chunk(b"IDAT", idat, crc=idat_crc)
        + png_chunk(b"IEND", b"")
    )


def deflate_bomb_png(width: int, height: int) -> bytes:
    """A 1-bit black PNG of `width` x `height` whose IDAT inflates to ~width*height/8 bytes
    while the file stays tiny (zeros deflate ~1000:1): a decompression bomb."""
    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then the packed bits
    packer = zlib.compressobj(9)
    rows_per_chunk = max(1, (1 << 20) // len(row))
    parts: list[bytes] = []
    for start in range(0, height, rows_per_chunk):
        parts.append(packer.compress(row * min(rows_per_chunk, height - start)))
    parts.append(packer.flush())
    return png_bytes(width, height, b"".join(parts), bit_depth=1, colour_type=0)


def claimed_size_png(width: int, height: int) -> bytes:
    """A 16x16 PNG whose IHDR (with a correct CRC) claims `width` x `height`."""
    raw = (b"\x00" + bytes(16)) * 16
    return png_bytes(width, height, zlib.compress(raw))


def interlaced_png(width: int, height: int) -> bytes:
    """An Adam7-interlaced PNG (Pillow cannot write one; libvips can)."""
    import pyvips

    rgb = np.ascontiguousarray(np.asarray(photo_pixels(width, height), dtype=np.uint8))
    image = pyvips.Image.new_from_memory(rgb.tobytes(), width, height, 3, "uchar")
    return bytes(image.pngsave_buffer(interlace=True))


def gif_bytes(
    screen_width: int,
    screen_height: int,
    frames: int = 1,
    *,
    frame_size: tuple[int, int] = (1, 1),
    pixels: int | None = None,
) -> bytes:
    """A GIF written byte by byte: a logical screen of any claimed size holding `frames`
    frames of `frame_size` (all of colour 0, red); `frames=0` gives a GIF with no image.
    `pixels` cuts each frame's LZW data to that many pixels (a frame that claims more)."""
    width, height = frame_size
    out = bytearray(b"GIF89a")
    # global colour table of 2 entries (red, blue), background 0, no aspect
    out += struct.pack("<HHBBB", screen_width, screen_height, 0x80, 0, 0) + bytes(RED + BLUE)
    if frames > 1:
        out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"  # loop forever
    lzw = _gif_lzw_zeros(width * height if pixels is None else pixels)
    for _ in range(frames):
        out += b"\x21\xf9\x04\x04\x0a\x00\x00\x00"  # graphic control: 100 ms, keep
        out += b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0)
        out += b"\x02" + b"".join(
            bytes([len(lzw[i : i + 255])]) + lzw[i : i + 255] for i in range(0, len(lzw), 255)
        )
        out += b"\x00"
    return bytes(out + b"\x3b")


def _gif_lzw_zeros(count: int) -> bytes:
    """LZW data (minimum code size 2) for `count` pixels of colour 0: a clear code before
    every pixel keeps the code width at 3 bits, which is valid if not compact."""
    clear, end = 4, 5
    codes = [code for _ in range(count) for code in (clear, 0)] + [end]
    bits = 0
    for i, code in enumerate(codes):
        bits |= code << (3 * i)
    return bits.to_bytes((3 * len(codes) + 7) // 8, "little")


def tiff_bytes(
    width: int,
    height: int,
    strip: bytes | None = None,
    *,
    compression: int = 1,
    next_ifd: int = 0,
    extra: Sequence[tuple[int, int, int, int]] = (),
) -> bytes:
    """A little-endian 8-bit grey TIFF with one IFD written by hand: the IFD may claim any
    size and compression, `next_ifd` may point anywhere (8 is the IFD itself: a loop), and
    `extra` adds raw (tag, type, count, value) entries."""
    data = strip if strip is not None else bytes(width * height)
    entries = sorted(
        [
            (256, 4, 1, width),
            (257, 4, 1, height),
            (258, 3, 1, 8),
            (259, 3, 1, compression),
            (262, 3, 1, 1),
            (273, 4, 1, 0),  # strip offset, patched below
            (277, 3, 1, 1),
            (278, 4, 1, height),
            (279, 4, 1, len(data)),
            *extra,
        ]
    )
    ifd_size = 2 + 12 * len(entries) + 4
    data_at = 8 + ifd_size
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, raw in entries:
        value = data_at if tag == 273 else raw
        packed = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    ifd += struct.pack("<I", next_ifd)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + data


def multipage_tiff(width: int, height: int, pages: int) -> bytes:
    """A multi-page TIFF; page i is a solid colour (page 0 red)."""
    colours = [RED, (0, 255, 0), BLUE, (255, 255, 0)]
    images = [Image.new("RGB", (width, height), colours[i % len(colours)]) for i in range(pages)]
    return _save(images[0], "TIFF", save_all=True, append_images=images[1:])


def animated_webp(width: int, height: int, frames: int = 3) -> bytes:
    """An animated WebP; frame i is a solid colour (frame 0 red)."""
    colours = [RED, (0, 255, 0), BLUE, (255, 255, 0)]
    images = [Image.new("RGB", (width, height), colours[i % len(colours)]) for i in range(frames)]
    return _save(
        images[0], "WEBP", save_all=True, append_images=images[1:], duration=100, lossless=True
    )


def claimed_size_webp(width: int, height: int) -> bytes:
    """A lossless (VP8L) WebP whose bitstream header claims `width` x `height` (<= 16384)."""
    data = bytearray(_save(Image.new("RGB", (16, 16), RED), "WEBP", lossless=True))
    at = data.find(b"VP8L")
    assert at >= 0 and data[at + 8] == 0x2F, "not a simple lossless WebP"
    bits = int.from_bytes(data[at + 9 : at + 13], "little")
    bits = (bits & ~0x0FFFFFFF) | (width - 1) | ((height - 1) << 14)
    data[at + 9 : at + 13] = bits.to_bytes(4, "little")
    return bytes(data)


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    """One JPEG marker segment (APPn, COM...); the payload is at most 65533 bytes."""
    assert len(payload) <= 65533
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def with_segments(jpeg: bytes, segments: Sequence[bytes]) -> bytes:
    """`jpeg` with marker segments inserted right after its SOI."""
    assert jpeg[:2] == b"\xff\xd8"
    return jpeg[:2] + b"".join(segments) + jpeg[2:]


def without_segment(jpeg: bytes, marker: int, prefix: bytes = b"") -> bytes:
    """`jpeg` with every `marker` segment whose payload starts with `prefix` removed."""
    out, at = bytearray(jpeg[:2]), 2
    while at + 4 <= len(jpeg) and jpeg[at] == 0xFF and jpeg[at + 1] != 0xDA:
        length = struct.unpack(">H", jpeg[at + 2 : at + 4])[0]
        segment = jpeg[at : at + 2 + length]
        if not (jpeg[at + 1] == marker and segment[4:].startswith(prefix)):
            out += segment
        at += 2 + length
    return bytes(out + jpeg[at:])


def icc_segments(profile: bytes) -> list[bytes]:
    """An ICC profile split into APP2 ICC_PROFILE segments, as JPEG carries it."""
    size = 65519
    parts = [profile[i : i + size] for i in range(0, len(profile), size)] or [b""]
    return [
        jpeg_segment(0xE2, b"ICC_PROFILE\x00" + bytes([i + 1, len(parts)]) + part)
        for i, part in enumerate(parts)
    ]


def progressive_jpeg(width: int, height: int) -> bytes:
    return _save(photo_pixels(width, height), "JPEG", quality=90, progressive=True)


def corner_jpeg(width: int, height: int, orientation: int) -> bytes:
    """Stored pixels blue with the top-left quadrant red, tagged with an EXIF `orientation`:
    where the red corner lands once upright tells every one of the 8 orientations apart
    (with the aspect, which 5-8 swap)."""
    image = Image.new("RGB", (width, height), BLUE)
    image.paste(RED, (0, 0, width // 2, height // 2))
    return _save(image, "JPEG", quality=95, exif=exif_bytes(orientation=orientation, camera=False))


# Where the red corner of corner_jpeg ends up once the EXIF orientation is applied.
RED_CORNER = {1: "tl", 2: "tr", 3: "br", 4: "bl", 5: "tl", 6: "tr", 7: "br", 8: "bl"}


def vips_native(width: int, height: int) -> bytes:
    """libvips' own `.v` format (it has no buffer saver: through a temporary file)."""
    import tempfile
    from pathlib import Path

    import pyvips

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "image.v"
        pyvips.Image.black(width, height, bands=3).cast("uchar").write_to_file(str(path))
        return path.read_bytes()


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


def large_image(width: int, height: int, fmt: str) -> bytes:
    """A big image (a horizontal grey ramp in RGB) encoded by libvips, which streams it:
    10000x10000 in well under a second, never held whole in Python. `fmt`: ".png", ".jpg"."""
    import pyvips

    ramp = (pyvips.Image.xyz(width, height)[0] % 256).cast("uchar")
    rgb = ramp.bandjoin([ramp, ramp]).copy(interpretation="srgb")
    options = {".png": "[compression=1]", ".jpg": "[Q=50]"}.get(fmt, "")
    return bytes(rgb.write_to_buffer(fmt + options))
