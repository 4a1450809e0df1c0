"""A generated adversarial corpus: every file a hostile or careless uploader might send, each
with the one outcome imgpipe must reach under the default settings.

`corpus()` builds the cases in code (Pillow, struct, zlib; nothing binary is committed) and
caches them. `expected` is "PROCESSED" or the error code of the FAILED record. Decisions
worth knowing:

- Polyglots: a valid image with anything appended (ZIP, HTML, a JAR) decodes as the image and
  is PROCESSED; the renditions are re-encoded pixels, so nothing appended survives. A file
  that *starts* as something else (HTML, SVG) is refused by its magic bytes even when a JPEG
  follows later: unsupported_format.
- Empty and 1-byte files are unsupported_format (no magic bytes to recognise); 3 bytes of
  JPEG magic with nothing after are corrupt_image (a JPEG, but a broken one).
- Broken metadata never loses an image: garbage EXIF, bogus or looping EXIF offsets, an
  orientation outside 1-8 (treated as 1) and an unusable ICC profile are all PROCESSED.
- A header that lies about the size is judged by the lie: too_many_pixels before any pixel
  is decoded, however small the file.
"""

from __future__ import annotations

import functools
import io
import random
import struct
import zlib
from dataclasses import dataclass

from PIL import Image

import imagegen as gen

PROCESSED = "PROCESSED"
UNSUPPORTED = "unsupported_format"
CORRUPT = "corrupt_image"
TOO_LARGE = "too_large"
TOO_MANY_PIXELS = "too_many_pixels"
TOO_MANY_FRAMES = "too_many_frames"

DISGUISE = ("photo.jpg", "image/jpeg")


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    expected: str  # "PROCESSED" or the error code of the FAILED record
    note: str
    filename: str = "upload.bin"  # how it is uploaded: the name and type are never trusted
    content_type: str = "application/octet-stream"
    size: tuple[int, int] | None = None  # the record's width x height (upright), if checked
    red_corner: str | None = None  # "tl", "tr", "bl", "br": where red is once upright
    first_frame_red: bool = False  # the renditions show the first frame / page (red)

    def __str__(self) -> str:
        return self.name


def _garbage(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _small_jpeg() -> bytes:
    return gen.photo_jpeg(64, 48, camera=False)


def _png(width: int, height: int, mode: str = "RGB", **options: object) -> bytes:
    return gen._save(gen.photo_pixels(width, height).convert(mode), "PNG", **options)


def _cut(data: bytes, *offsets: int | float) -> list[tuple[str, bytes]]:
    """`data` truncated at each offset: an int is a byte count, a float a fraction."""
    cuts = []
    for offset in offsets:
        at = int(len(data) * offset) if isinstance(offset, float) else offset
        cuts.append((f"at{at}", data[:at]))
    return cuts


def _exif_app1(tiff: bytes) -> bytes:
    return gen.jpeg_segment(0xE1, b"Exif\x00\x00" + tiff)


def _exif_bogus_offsets() -> bytes:
    """IFD0 claims 3 entries whose values live far past the end of the block, and the next
    IFD is at 0xFFFFFF00."""
    entries = [
        (0x010F, 2, 0x7FFFFFFF, 0x7FFFFF00),  # Make: 2 GB of ASCII, somewhere
        (0x0112, 3, 1, 6),  # Orientation 6 is fine...
        (0x8769, 4, 1, 0xFFFFFFF0),  # ...the EXIF sub-IFD is nowhere
    ]
    body = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        body += struct.pack("<HHII", tag, kind, count, value)
    return b"II*\x00" + struct.pack("<I", 8) + body + struct.pack("<I", 0xFFFFFF00)


def _exif_loop() -> bytes:
    """IFD0's next IFD and its EXIF sub-IFD pointer both point back at IFD0."""
    entries = [(0x0112, 3, 1, 1), (0x8769, 4, 1, 8)]
    body = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        body += struct.pack("<HHII", tag, kind, count, value)
    return b"II*\x00" + struct.pack("<I", 8) + body + struct.pack("<I", 8)


def _ispe(heif: bytes, width: int, height: int) -> bytes:
    """An AVIF/HEIF whose first image spatial extents (ispe) box claims another size."""
    at = heif.find(b"ispe")
    assert at > 0, "no ispe box"
    # box type(4), version+flags(4), then width and height as 32-bit big-endian
    return heif[: at + 8] + struct.pack(">II", width, height) + heif[at + 16 :]


def _riff_size(webp: bytes, size: int) -> bytes:
    return webp[:4] + struct.pack("<I", size) + webp[8:]


def _bombs() -> list[Case]:
    bomb = "header claims {}: refused from the header, no pixel decoded"
    return [
        Case(
            "jpeg_header_bomb",
            gen.claimed_size_jpeg(60000, 60000),
            TOO_MANY_PIXELS,
            bomb.format("60000x60000 in 600 bytes"),
        ),
        Case(
            "png_header_bomb",
            gen.claimed_size_png(100000, 100000),
            TOO_MANY_PIXELS,
            bomb.format("100000x100000 (IHDR with a valid CRC)"),
        ),
        Case(
            "png_deflate_bomb",
            gen.deflate_bomb_png(20000, 20000),
            TOO_MANY_PIXELS,
            "IDAT inflates to 50 MB of 1-bit pixels (4e8 pixels) from ~50 kB: the IHDR is enough",
        ),
        Case(
            "gif_header_bomb",
            gen.gif_bytes(65535, 65535, frame_size=(65535, 65535), pixels=1),
            TOO_MANY_PIXELS,
            bomb.format("a 65535x65535 frame holding 1 pixel of LZW data"),
        ),
        Case(
            "gif_screen_bomb",
            gen.gif_bytes(65535, 65535),
            PROCESSED,
            "a 65535x65535 logical screen around a 1x1 frame: libnsgif ignores a screen over"
            " 2048 px (as browsers do) and sizes the image by its frames, 1x1",
            size=(1, 1),
        ),
        Case(
            "webp_header_bomb",
            gen.claimed_size_webp(16383, 16383),
            TOO_MANY_PIXELS,
            bomb.format("16383x16383 in a VP8L bitstream header"),
        ),
        Case(
            "webp_oversized_header",
            gen.claimed_size_webp(16384, 16384),
            CORRUPT,
            "16384x16384 is past what libvips accepts for WebP: refused as bad dimensions",
        ),
        Case(
            "tiff_header_bomb",
            gen.tiff_bytes(100000, 100000, strip=bytes(64)),
            TOO_MANY_PIXELS,
            bomb.format("100000x100000 with a 64-byte strip"),
        ),
        Case(
            "gif_frame_bomb",
            gen.gif_bytes(8, 8, frames=300),
            TOO_MANY_FRAMES,
            "300 frames of 1x1 (limit 200): counted from the file before any frame is decoded",
        ),
        Case(
            "gif_frame_pixel_bomb",
            gen.gif_bytes(1000, 1000, frames=150),
            TOO_MANY_PIXELS,
            "150 frames on a 1000x1000 screen = 1.5e8 pixels, from a 2 kB file",
        ),
        Case(
            "tiff_page_bomb",
            gen.multipage_tiff(1, 1, 300),
            TOO_MANY_FRAMES,
            "300 pages (limit 200)",
        ),
        Case(
            "webp_frame_bomb",
            gen.animated_webp(2, 2, frames=250),
            TOO_MANY_FRAMES,
            "250 animation frames (limit 200)",
        ),
        Case(
            "png_deflate_at_limit",
            gen.deflate_bomb_png(10000, 10000),
            PROCESSED,
            "the same bomb at exactly max_pixels (1e8) from 12 kB: allowed, and decoded"
            " in bounded memory (libvips streams PNG rows)",
            size=(10000, 10000),
        ),
        Case(
            "png_at_pixel_limit",
            gen.large_image(10000, 10000, ".png"),
            PROCESSED,
            "a real 10000x10000 RGB PNG: the largest image the default limits let through",
            size=(10000, 10000),
        ),
        Case(
            "jpeg_at_pixel_limit",
            gen.large_image(10000, 10000, ".jpg"),
            PROCESSED,
            "a real 10000x10000 JPEG (shrink-on-load decodes it at 1/4 scale)",
            size=(10000, 10000),
        ),
        Case(
            "png_beyond_vips_range",
            gen.claimed_size_png(1, 587202584),
            CORRUPT,
            "1x587202584: a side past libvips' coordinate limit fails its header read before"
            " imgpipe's pixel check can say too_many_pixels; refused either way",
        ),
        Case(
            "avif_ispe_out_of_range",
            _ispe(gen.avif(64, 48), 64, 587202584),
            CORRUPT,
            "ispe claims 64x587202584: libvips' header reads height 1 (a GLib warning), so the"
            " pixel check cannot see the claim; libheif refuses the decode (its own limit)",
        ),
        Case(
            "heic_ispe_lies",
            _ispe(gen.heic(64, 48), 20000, 20000),
            CORRUPT,
            "the coded item's ispe says 20000x20000 under a 64x48 crop: libheif finds the"
            " decoded size differs from the signalled one",
        ),
        Case(
            "png_one_row_over_limit",
            gen.claimed_size_png(10000, 10001),
            TOO_MANY_PIXELS,
            "one row over max_pixels: the limit is exact",
        ),
        Case(
            "gif_frames_at_limit",
            gen.gif_bytes(1000, 1000, frames=100, frame_size=(1000, 1000), pixels=1),
            PROCESSED,
            "100 frames x 1000x1000 = max_pixels exactly; frames whose LZW data stops early",
            size=(1000, 1000),
        ),
        Case(
            "too_large",
            b"\xff\xd8\xff\xe0" + bytes(50 * 1024 * 1024),
            TOO_LARGE,
            "one byte over limits.max_bytes (50 MiB): refused before sniffing",
        ),
    ]


def _truncations() -> list[Case]:
    sources = {
        "jpeg": gen.photo_jpeg(300, 200, camera=False, quality=95),
        "png": _png(300, 200),
        "gif": gen.animated_gif(120, 80, frames=2),
        "webp": gen.webp(300, 200),
        "tiff": gen.tiff(300, 200),
        "heic": gen.heic(128, 96),
        "avif": gen.avif(128, 96),
    }
    offsets: dict[str, tuple[int | float, ...]] = {
        "jpeg": (3, 200, 0.5, -100),
        "png": (16, 40, 0.5, -16, -12),  # -16 cuts into the last IDAT's CRC, -12 the IEND
        "gif": (13, 0.5, -1),  # -1 cuts the trailer byte
        "webp": (20, 0.5),
        "tiff": (16, 0.5),
        "heic": (24, 0.5),
        "avif": (24, 0.5),
    }
    cases = []
    for fmt, data in sources.items():
        for offset in offsets[fmt]:
            at = offset if isinstance(offset, float) else offset % len(data)
            for label, cut in _cut(data, at):
                expected = CORRUPT
                note = f"{fmt} cut {label} of {len(data)} bytes: never half-rendered"
                if (fmt, offset) in {("gif", -1), ("png", -12)}:
                    # Only the end marker (GIF's 0x3B trailer, PNG's IEND chunk) is missing:
                    # every pixel is there and checked, as in many files in the wild.
                    expected, note = PROCESSED, f"{fmt} without its end marker: all pixels there"
                cases.append(Case(f"truncated_{fmt}_{label}", cut, expected, note))
    return cases


def _tiny() -> list[Case]:
    return [
        Case("empty", b"", UNSUPPORTED, "zero bytes: nothing to recognise"),
        Case("one_byte", b"\xff", UNSUPPORTED, "1 byte: too short for any magic"),
        Case("jpeg_magic_only", b"\xff\xd8\xff", CORRUPT, "JPEG magic and nothing else"),
        Case("png_signature_only", gen.PNG_SIGNATURE, CORRUPT, "PNG signature, no IHDR"),
        Case(
            "jpeg_zero_height",
            gen.claimed_size_jpeg(16, 0),
            CORRUPT,
            "SOF height 0 (a DNL-style JPEG; libjpeg refuses it)",
        ),
        Case(
            "png_zero_width",
            gen.claimed_size_png(0, 16),
            CORRUPT,
            "IHDR width 0 is invalid PNG",
        ),
        Case("gif_no_image", gen.gif_bytes(16, 16, frames=0), CORRUPT, "screen, no frame"),
    ]


def _polyglots() -> list[Case]:
    jpeg = _small_jpeg()
    zipped = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("evil.html", "<script>alert(1)</script>")
    html = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"
    return [
        Case(
            "jpeg_plus_zip",
            jpeg + zipped.getvalue(),
            PROCESSED,
            "JPEG with a ZIP appended: the image decodes; renditions carry pixels only",
            *DISGUISE,
        ),
        Case(
            "jpeg_plus_html",
            jpeg + html,
            PROCESSED,
            "JPEG with HTML appended: decodes, nothing appended survives re-encoding",
            *DISGUISE,
        ),
        Case(
            "gif_plus_jar",
            gen.animated_gif(32, 32, frames=1) + zipped.getvalue(),
            PROCESSED,
            "GIFAR: a GIF with a JAR/ZIP after its trailer",
        ),
        Case(
            "png_trailing_garbage",
            _png(40, 30) + _garbage(500, 1),
            PROCESSED,
            "bytes after IEND are ignored",
        ),
        Case(
            "html_then_jpeg",
            html + jpeg,
            UNSUPPORTED,
            "starts as HTML, a JPEG later: judged by the first bytes",
            *DISGUISE,
        ),
        Case(
            "svg_then_jpeg",
            gen.SVG + jpeg,
            UNSUPPORTED,
            "starts as SVG, a JPEG later",
            *DISGUISE,
        ),
        Case(
            "png_named_jpg",
            _png(40, 30),
            PROCESSED,
            "a real PNG with a .jpg name and image/jpeg type: accepted by content",
            *DISGUISE,
        ),
    ]


def _refused_payloads() -> dict[str, tuple[bytes, str, str]]:
    """name -> (bytes, honest file name, honest content type) of formats imgpipe refuses."""
    small = Image.new("RGB", (16, 16), gen.RED)
    mvg = (
        b"push graphic-context\nviewbox 0 0 64 64\n"
        b"fill red\nrectangle 0 0 64 64\npop graphic-context\n"
    )
    fits = (
        b"SIMPLE  =                    T".ljust(80)
        + b"BITPIX  =                    8".ljust(80)
        + b"NAXIS   =                    0".ljust(80)
        + b"END".ljust(80)
    )
    psd = (
        b"8BPS\x00\x01"
        + bytes(6)
        + struct.pack(">HIIHH", 3, 16, 16, 8, 3)
        + struct.pack(">III", 0, 0, 0)
        + bytes(16 * 16 * 3)
    )
    exr = b"\x76\x2f\x31\x01\x02\x00\x00\x00" + b"channels\x00chlist\x00" + bytes(64)
    return {
        "svg": (gen.SVG, "image.svg", "image/svg+xml"),
        "svg_utf16": (gen.SVG.decode().encode("utf-16"), "image.svg", "image/svg+xml"),
        "svgz": (zlib.compress(gen.SVG), "image.svgz", "image/svg+xml"),
        "mvg": (mvg, "image.mvg", "image/x-mvg"),
        "pdf": (gen.PDF, "doc.pdf", "application/pdf"),
        "postscript": (
            b"%!PS-Adobe-3.0\n0 0 moveto (hi) show showpage\n",
            "a.ps",
            "application/postscript",
        ),
        "psd": (psd, "image.psd", "image/vnd.adobe.photoshop"),
        "bmp": (gen._save(small, "BMP"), "image.bmp", "image/bmp"),
        "ico": (gen._save(small, "ICO"), "favicon.ico", "image/x-icon"),
        "exr": (exr, "image.exr", "image/x-exr"),
        "fits": (fits.ljust(2880), "image.fits", "image/fits"),
        "vips_native": (gen.vips_native(16, 16), "image.v", "application/octet-stream"),
        "ppm": (gen._save(small, "PPM"), "image.ppm", "image/x-portable-pixmap"),
        "pgm": (gen._save(small.convert("L"), "PPM"), "image.pgm", "image/x-portable-graymap"),
        "vips_matrix": (b"3 3\n1 2 1\n2 4 2\n1 2 1\n", "kernel.mat", "text/plain"),
        "csv": (b"0,0,0\n255,0,0\n0,255,0\n", "pixels.csv", "text/csv"),
        "mp4": (
            struct.pack(">I", 24) + b"ftypisom" + bytes(4) + b"isommp41",
            "clip.mp4",
            "video/mp4",
        ),
    }


def _refused() -> list[Case]:
    cases = []
    for name, (data, filename, content_type) in _refused_payloads().items():
        cases.append(
            Case(name, data, UNSUPPORTED, f"{name}: not an accepted format", filename, content_type)
        )
        cases.append(
            Case(f"{name}_as_jpeg", data, UNSUPPORTED, f"{name} named .jpg, image/jpeg", *DISGUISE)
        )
    return cases


def _colour_and_depth() -> list[Case]:
    cmyk = gen.cmyk_jpeg(64, 48)  # Pillow writes Adobe-style inverted CMYK with an APP14
    return [
        Case(
            "cmyk_jpeg_adobe_inverted",
            cmyk,
            PROCESSED,
            "CMYK with an Adobe APP14 marker (inverted ink values, as Photoshop writes)",
            size=(64, 48),
            red_corner="all",
        ),
        Case(
            "cmyk_jpeg_no_app14",
            gen.without_segment(cmyk, 0xEE, b"Adobe"),
            PROCESSED,
            "CMYK without APP14: read as plain CMYK; colours may be off, the image is not lost",
            size=(64, 48),
        ),
        Case("rgb16_png", gen.rgb16_png(40, 30), PROCESSED, "16-bit RGB", size=(40, 30)),
        Case("grey16_png", gen.grey16_png(40, 30), PROCESSED, "16-bit grey", size=(40, 30)),
        Case(
            "grey16_tiff",
            gen._save(Image.new("I;16", (40, 30), 40000), "TIFF"),
            PROCESSED,
            "16-bit grey TIFF",
            size=(40, 30),
        ),
        Case(
            "palette_trns_png",
            gen.palette_png(40, 30),
            PROCESSED,
            "palette with a tRNS transparent entry",
            size=(40, 30),
        ),
        Case("one_pixel", _png(1, 1), PROCESSED, "1x1: renditions 1x1", size=(1, 1)),
        Case(
            "wide_10000x2",
            _png(10000, 2),
            PROCESSED,
            "extreme aspect: every rendition is at least 1 px high",
            size=(10000, 2),
        ),
        Case(
            "tall_2x10000",
            _png(2, 10000),
            PROCESSED,
            "extreme aspect: every rendition is at least 1 px wide",
            size=(2, 10000),
        ),
        Case(
            "interlaced_png",
            gen.interlaced_png(120, 90),
            PROCESSED,
            "Adam7 interlaced",
            size=(120, 90),
        ),
        Case(
            "progressive_jpeg",
            gen.progressive_jpeg(120, 90),
            PROCESSED,
            "progressive (SOF2)",
            size=(120, 90),
        ),
        Case(
            "heic",
            gen.heic(128, 96),
            PROCESSED,
            "HEIC through pillow-heif",
            "IMG_0001.HEIC",
            "image/heic",
            size=(128, 96),
        ),
        Case("avif", gen.avif(128, 96), PROCESSED, "AVIF through libheif", size=(128, 96)),
    ]


def _animation() -> list[Case]:
    return [
        Case(
            "animated_gif",
            gen.animated_gif(48, 32, frames=4),
            PROCESSED,
            "4 frames: renditions show the first (red)",
            size=(48, 32),
            first_frame_red=True,
        ),
        Case(
            "animated_webp",
            gen.animated_webp(48, 32, frames=4),
            PROCESSED,
            "4 frames: renditions show the first (red)",
            size=(48, 32),
            first_frame_red=True,
        ),
        Case(
            "multipage_tiff",
            gen.multipage_tiff(48, 32, pages=3),
            PROCESSED,
            "3 pages: renditions show the first (red)",
            size=(48, 32),
            first_frame_red=True,
        ),
    ]


def _metadata() -> list[Case]:
    jpeg = _small_jpeg()
    orientation = [
        Case(
            f"exif_orientation_{o}",
            gen.corner_jpeg(64, 48, o),
            PROCESSED,
            f"EXIF orientation {o}: renditions upright, red corner {gen.RED_CORNER[o]}",
            size=(64, 48) if o <= 4 else (48, 64),
            red_corner=gen.RED_CORNER[o],
        )
        for o in range(1, 9)
    ]
    invalid_orientation = [
        Case(
            f"exif_orientation_{o}",
            gen.corner_jpeg(64, 48, o),
            PROCESSED,
            f"orientation {o} is not 1-8: treated as 1",
            size=(64, 48),
            red_corner="tl",
        )
        for o in (0, 9, 65535)
    ]
    big_icc = gen.icc_segments(_garbage(64 * 65519, 7))
    return [
        *orientation,
        *invalid_orientation,
        Case(
            "exif_garbage_app1",
            gen.with_segments(jpeg, [_exif_app1(_garbage(2000, 3))]),
            PROCESSED,
            "APP1 'Exif' followed by random bytes",
            size=(64, 48),
        ),
        Case(
            "exif_bogus_offsets",
            gen.with_segments(jpeg, [_exif_app1(_exif_bogus_offsets())]),
            PROCESSED,
            "EXIF entries and IFD pointers far outside the block",
        ),
        Case(
            "exif_ifd_loop",
            gen.with_segments(jpeg, [_exif_app1(_exif_loop())]),
            PROCESSED,
            "EXIF next-IFD and sub-IFD pointers loop back to IFD0",
            size=(64, 48),
        ),
        Case(
            "icc_garbage_app2",
            gen.with_segments(jpeg, gen.icc_segments(_garbage(3000, 4))),
            PROCESSED,
            "APP2 ICC_PROFILE of random bytes: decoded untransformed",
            size=(64, 48),
        ),
        Case(
            "icc_oversized_app2",
            gen.with_segments(jpeg, big_icc),
            PROCESSED,
            "a 4 MB garbage ICC profile in 64 APP2 segments",
            size=(64, 48),
        ),
        Case(
            "icc_garbage_iccp",
            gen.png_bytes(
                16,
                16,
                zlib.compress((b"\x00" + bytes(16)) * 16),
                before_idat=[
                    gen.png_chunk(b"iCCP", b"junk\x00\x00" + zlib.compress(_garbage(3000, 5)))
                ],
            ),
            PROCESSED,
            "PNG iCCP whose profile is random bytes",
            size=(16, 16),
        ),
        Case(
            "icc_undeflatable_iccp",
            gen.png_bytes(
                16,
                16,
                zlib.compress((b"\x00" + bytes(16)) * 16),
                before_idat=[gen.png_chunk(b"iCCP", b"junk\x00\x00" + _garbage(300, 6))],
            ),
            PROCESSED,
            "PNG iCCP whose compressed profile is not even zlib",
            size=(16, 16),
        ),
        Case(
            "jpeg_huge_com",
            gen.with_segments(
                jpeg,
                [gen.jpeg_segment(0xFE, _garbage(65533, 8))] * 80
                + [gen.jpeg_segment(0xEF, b"\xff" * 65533)],
            ),
            PROCESSED,
            "80 maximal COM segments and a maximal APP15: 5 MB of markers",
            size=(64, 48),
        ),
    ]


def _structure() -> list[Case]:
    png = _png(40, 30)
    webp = gen.webp(40, 30)
    idat_at = png.find(b"IDAT")
    (idat_len,) = struct.unpack(">I", png[idat_at - 4 : idat_at])
    crc_at = idat_at + 4 + idat_len
    bad_crc = png[:crc_at] + bytes(4 * [png[crc_at] ^ 0xFF]) + png[crc_at + 4 :]
    idat = bytearray(png[idat_at + 4 : crc_at])
    idat[len(idat) // 2 : len(idat) // 2 + 40] = bytes(40)
    damaged_idat = png[: idat_at - 4] + gen.png_chunk(b"IDAT", bytes(idat)) + png[crc_at + 4 :]
    text = gen.png_chunk(b"tEXt", b"Comment\x00hi", crc=0xDEADBEEF)
    bad_text_crc = png[: idat_at - 4] + text + png[idat_at - 4 :]
    tiff = bytearray(gen.tiff(120, 90))
    tiff[len(tiff) // 3 : len(tiff) // 3 + 200] = _garbage(200, 10)
    jpeg = gen.photo_jpeg(120, 90, camera=False)
    scan = (jpeg.find(b"\xff\xda") + len(jpeg)) // 2
    damaged_scan = jpeg[:scan] + b"\x33" * 30 + jpeg[scan + 30 :]
    dqt = jpeg.find(b"\xff\xdb")
    return [
        Case(
            "png_wrong_crc",
            bad_crc,
            CORRUPT,
            "IDAT CRC wrong: a damaged file (needs fail_on=error; at 'truncated' libpng"
            " ignored CRCs)",
        ),
        Case(
            "png_bad_ancillary_crc",
            bad_text_crc,
            PROCESSED,
            "a tEXt chunk with a wrong CRC: libpng drops the chunk, the pixels are intact",
            size=(40, 30),
        ),
        Case(
            "png_damaged_idat",
            damaged_idat,
            CORRUPT,
            "40 bytes of the deflate stream zeroed, CRC recomputed: inflate fails",
        ),
        Case(
            "tiff_damaged_lzw",
            bytes(tiff),
            CORRUPT,
            "200 random bytes inside the LZW strips (at fail_on=truncated it rendered garbage)",
        ),
        Case(
            "jpeg_damaged_scan",
            damaged_scan,
            PROCESSED,
            "30 bytes of entropy-coded data overwritten: libjpeg resyncs and only warns, as"
            " browsers show such photos; the damage is visible, the image is not lost",
            size=(120, 90),
        ),
        Case(
            "jpeg_extraneous_bytes",
            jpeg[:dqt] + b"\x00\x01junk" + jpeg[dqt:],
            PROCESSED,
            "stray bytes between markers (a libjpeg warning, common in camera files)",
            size=(120, 90),
        ),
        Case(
            "webp_riff_size_too_big",
            _riff_size(webp, 0x7FFFFFF0),
            CORRUPT,
            "RIFF size claims 2 GB: libwebp sees a truncated file",
        ),
        Case(
            "webp_riff_size_too_small",
            _riff_size(webp, 12),
            CORRUPT,
            "RIFF size shorter than the VP8 chunk it holds",
        ),
        Case(
            "tiff_ifd_loop",
            gen.tiff_bytes(16, 16, next_ifd=8),
            PROCESSED,
            "the next-IFD pointer loops to the first IFD: libtiff stops at the loop, 1 page",
            size=(16, 16),
        ),
        Case(
            "tiff_bogus_compression",
            gen.tiff_bytes(16, 16, compression=12345),
            CORRUPT,
            "compression 12345 does not exist",
        ),
        Case(
            "tiff_old_jpeg",
            gen.tiff_bytes(16, 16, strip=_garbage(256, 9), compression=6),
            CORRUPT,
            "old-style JPEG-in-TIFF (compression 6) with garbage where the JPEG should be",
        ),
    ]


@functools.cache
def corpus() -> tuple[Case, ...]:
    cases = (
        _bombs()
        + _truncations()
        + _tiny()
        + _polyglots()
        + _refused()
        + _colour_and_depth()
        + _animation()
        + _metadata()
        + _structure()
    )
    names = [case.name for case in cases]
    assert len(set(names)) == len(names), "case names must be unique"
    return tuple(cases)


def by_name(name: str) -> Case:
    return next(case for case in corpus() if case.name == name)


# The cases that make a decoder work hardest: bombs, a huge metadata load, extreme aspect.
WORST = (
    "png_at_pixel_limit",
    "jpeg_at_pixel_limit",
    "png_deflate_at_limit",
    "png_deflate_bomb",
    "gif_frame_pixel_bomb",
    "jpeg_huge_com",
    "icc_oversized_app2",
    "tall_2x10000",
)
