"""libwebp's own settings, searched: is there a lossy WebP configuration that encodes faster than
every engine's default (method 4) with files no larger and SSIM no lower, size by size?

    python bench/webp_search.py [N]      # N photos of the corpus (default 8); prints a table

Pillow and libvips expose only quality and method (effort); libwebp has more (segments, SNS,
the loop filter, partition_limit, which caps intra-4x4 coding). This script calls the libwebp
that ships with Pillow (the one imgpipe's WebP renditions come from) through its C API with
ctypes, setting WebPConfig fields directly. It first checks that the default configuration
writes exactly the bytes Pillow writes, so the harness is the encoder imgpipe runs.

The pixels are the floor's (shrink-on-load decode, Lanczos3 cascade to 1600, 800 and 256 px);
SSIM is bench/quality.py's, against the full-resolution reference. Time is CPU time of the
three WebP encodes per image (time.process_time), in one process.
"""

from __future__ import annotations

import ctypes
import io
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality
from engines.common import SIZES, WEBP_METHOD, WEBP_QUALITY, inside_size

_ABI = 0x0210  # WEBP_ENCODER_ABI_VERSION of libwebp 1.5 / 1.6 (src/webp/encode.h)
_FLOATS = {"quality", "target_PSNR"}
# struct WebPConfig, in order (libwebp 1.6.0 src/webp/encode.h): all int but two floats.
_CONFIG_FIELDS = [
    "lossless",
    "quality",
    "method",
    "image_hint",
    "target_size",
    "target_PSNR",
    "segments",
    "sns_strength",
    "filter_strength",
    "filter_sharpness",
    "filter_type",
    "autofilter",
    "alpha_compression",
    "alpha_filtering",
    "alpha_quality",
    "pass",
    "show_compressed",
    "preprocessing",
    "partitions",
    "partition_limit",
    "emulate_jpeg_size",
    "thread_level",
    "low_memory",
    "near_lossless",
    "exact",
    "use_delta_palette",
    "use_sharp_yuv",
    "qmin",
    "qmax",
]


class _Config(ctypes.Structure):
    _fields_ = [(f, ctypes.c_float if f in _FLOATS else ctypes.c_int) for f in _CONFIG_FIELDS]


_P = ctypes.c_void_p


class _Picture(ctypes.Structure):
    # struct WebPPicture (src/webp/encode.h), pointers and paddings included.
    _fields_ = [
        ("use_argb", ctypes.c_int),
        ("colorspace", ctypes.c_int),
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("y", _P),
        ("u", _P),
        ("v", _P),
        ("y_stride", ctypes.c_int),
        ("uv_stride", ctypes.c_int),
        ("a", _P),
        ("a_stride", ctypes.c_int),
        ("pad1", ctypes.c_uint32 * 2),
        ("argb", _P),
        ("argb_stride", ctypes.c_int),
        ("pad2", ctypes.c_uint32 * 3),
        ("writer", _P),
        ("custom_ptr", _P),
        ("extra_info_type", ctypes.c_int),
        ("extra_info", _P),
        ("stats", _P),
        ("error_code", ctypes.c_int),
        ("progress_hook", _P),
        ("user_data", _P),
        ("pad3", ctypes.c_uint32 * 3),
        ("pad4", _P),
        ("pad5", _P),
        ("pad6", ctypes.c_uint32 * 8),
        ("memory_", _P),
        ("memory_argb_", _P),
        ("pad7", _P * 2),
    ]


class _MemoryWriter(ctypes.Structure):
    _fields_ = [
        ("mem", _P),
        ("size", ctypes.c_size_t),
        ("max_size", ctypes.c_size_t),
        ("pad", ctypes.c_uint32),
    ]


def _libwebp() -> Any:
    import PIL

    found = sorted((Path(PIL.__file__).parent.parent / "pillow.libs").glob("libwebp-*.so*"))
    if not found:
        raise RuntimeError("no libwebp in Pillow's wheel (pillow.libs/libwebp-*.so)")
    lib = ctypes.CDLL(str(found[0]))
    lib.WebPConfigInitInternal.argtypes = [_P, ctypes.c_int, ctypes.c_float, ctypes.c_int]
    lib.WebPValidateConfig.argtypes = [_P]
    lib.WebPPictureInitInternal.argtypes = [_P, ctypes.c_int]
    lib.WebPPictureImportRGB.argtypes = [_P, ctypes.c_char_p, ctypes.c_int]
    lib.WebPEncode.argtypes = [_P, _P]
    lib.WebPPictureFree.argtypes = [_P]
    lib.WebPMemoryWriterInit.argtypes = [_P]
    lib.WebPMemoryWriterClear.argtypes = [_P]
    return lib


_LIB = _libwebp()


def encode(rgb: bytes, width: int, height: int, **settings: float) -> bytes:
    """Lossy WebP of packed RGB: libwebp's defaults (method 4) with `settings` applied
    (`quality` and any WebPConfig field; `pass_` for `pass`)."""
    config = _Config()
    quality_ = float(settings.pop("quality", WEBP_QUALITY))
    if not _LIB.WebPConfigInitInternal(ctypes.byref(config), 0, quality_, _ABI):
        raise RuntimeError("libwebp's encoder ABI differs from this script's")
    for name, value in settings.items():
        setattr(config, name.rstrip("_"), value)
    if not _LIB.WebPValidateConfig(ctypes.byref(config)):
        raise ValueError(f"libwebp refuses {settings}")
    picture, writer = _Picture(), _MemoryWriter()
    if not _LIB.WebPPictureInitInternal(ctypes.byref(picture), _ABI):
        raise RuntimeError("libwebp's encoder ABI differs from this script's")
    picture.width, picture.height = width, height
    _LIB.WebPMemoryWriterInit(ctypes.byref(writer))
    picture.writer = ctypes.cast(_LIB.WebPMemoryWrite, _P).value
    picture.custom_ptr = ctypes.addressof(writer)
    try:
        if not _LIB.WebPPictureImportRGB(ctypes.byref(picture), rgb, width * 3):
            raise MemoryError("WebPPictureImportRGB")
        if not _LIB.WebPEncode(ctypes.byref(config), ctypes.byref(picture)):
            raise RuntimeError(f"WebPEncode failed: error {picture.error_code}")
        return ctypes.string_at(writer.mem, writer.size)
    finally:
        _LIB.WebPPictureFree(ctypes.byref(picture))
        _LIB.WebPMemoryWriterClear(ctypes.byref(writer))


# (what, WebPConfig settings): one change from libwebp's defaults per row.
CONFIGS: list[tuple[str, dict[str, float]]] = [
    ("method 4 (every engine's default: the baseline)", {}),
    ("method 3", {"method": 3}),
    ("method 2", {"method": 2}),
    ("method 2, quality 84", {"method": 2, "quality": 84}),
    ("method 1", {"method": 1}),
    ("no intra 4x4 (partition_limit 100)", {"partition_limit": 100}),
    ("partition_limit 75", {"partition_limit": 75}),
    ("segments 1 (of 4)", {"segments": 1}),
    ("segments 2", {"segments": 2}),
    ("SNS off (sns_strength 0)", {"sns_strength": 0}),
    ("sns_strength 25", {"sns_strength": 25}),
    ("loop filter 30 (of 60)", {"filter_strength": 30}),
    ("quality 78", {"quality": 78}),
]

SSIM_TOLERANCE = 0.0005  # as the side-by-side goals table


@dataclass
class Row:
    what: str
    ms_per_image: float
    kb: dict[str, float]  # per size name, per image
    ssim: dict[str, float]  # per size name

    def meets(self, base: Row) -> bool:
        """No larger and no worse than `base`, size by size."""
        return all(
            self.kb[s] <= base.kb[s] and self.ssim[s] >= base.ssim[s] - SSIM_TOLERANCE
            for s in base.kb
        )


def _pixels(path: Path) -> list[tuple[str, int, int, bytes, Any]]:
    """The floor's three sizes of one photo (packed RGB) and their references' luma."""
    import pyvips

    data = path.read_bytes()
    header = pyvips.Image.new_from_buffer(data, "", access="sequential")
    transposed = header.get_typeof("orientation") and int(header.get("orientation")) >= 5
    width, height = (header.height, header.width) if transposed else (header.width, header.height)
    first_w, first_h = inside_size(width, height, SIZES[0][1])
    stored_w, stored_h = (first_h, first_w) if transposed else (first_w, first_h)
    shrink = next(
        (f for f in (8, 4, 2) if header.width // f >= stored_w and header.height // f >= stored_h),
        1,
    )
    image = pyvips.Image.new_from_buffer(data, f"shrink={shrink}")
    reference = quality.Reference(path)
    out = []
    for name, box in SIZES:
        w, h = inside_size(width, height, box)
        image = image.thumbnail_image(w, height=h, size="force").copy_memory()
        out.append((name, w, h, bytes(image.write_to_memory()), reference.at(w, h)))
    return out


def _check_harness(rgb: bytes, width: int, height: int) -> None:
    from PIL import Image

    pillow = io.BytesIO()
    Image.frombytes("RGB", (width, height), rgb).save(
        pillow, "WEBP", quality=WEBP_QUALITY, method=WEBP_METHOD
    )
    if encode(rgb, width, height) != pillow.getvalue():
        raise RuntimeError("the ctypes harness does not write what Pillow writes")


def search(files: list[Path]) -> list[Row]:
    from PIL import Image

    photos = [_pixels(f) for f in files]
    _, width, height, rgb, _ = photos[0][0]
    _check_harness(rgb, width, height)
    rows = []
    for what, settings in CONFIGS:
        cpu = 0.0
        sizes: dict[str, int] = {}
        scores: dict[str, list[float]] = {}
        for sizes_of_photo in photos:
            for name, w, h, rgb, reference in sizes_of_photo:
                started = time.process_time()
                blob = encode(rgb, w, h, **settings)
                cpu += time.process_time() - started
                sizes[name] = sizes.get(name, 0) + len(blob)
                with Image.open(io.BytesIO(blob)) as decoded:
                    got = quality.luma(np.asarray(decoded.convert("RGB")))
                scores.setdefault(name, []).append(quality.ssim(got, reference))
        n = len(photos)
        rows.append(
            Row(
                what,
                cpu / n * 1000,
                {k: v / n / 1024 for k, v in sizes.items()},
                {k: float(np.mean(v)) for k, v in scores.items()},
            )
        )
        print(f"  {what}: {rows[-1].ms_per_image:.0f} ms", flush=True)
    return rows


def table(rows: list[Row]) -> list[str]:
    base = rows[0]
    names = list(base.kb)
    lines = [
        "| libwebp setting | WebP ms per image | Δ time | "
        + " | ".join(f"{n}: Δ bytes / SSIM" for n in names)
        + " | no larger, no worse |",
        "|---|---:|---:|" + "---:|" * len(names) + "---|",
    ]
    for r in rows:
        cells = " | ".join(
            f"{(r.kb[n] / base.kb[n] - 1) * 100:+.1f}% / {r.ssim[n]:.4f}" for n in names
        )
        verdict = "(baseline)" if r is base else ("yes" if r.meets(base) else "no")
        lines.append(
            f"| {r.what} | {r.ms_per_image:.0f} | "
            f"{(r.ms_per_image / base.ms_per_image - 1) * 100:+.0f}% | {cells} | {verdict} |"
        )
    return lines


if __name__ == "__main__":
    import corpus

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    photos = corpus.build()
    print("\n".join(table(search(photos[:: max(1, len(photos) // count)][:count]))))
