"""A best-practice Pillow implementation of imgpipe's job, as a careful engineer writes it.

JPEG draft mode (libjpeg's DCT scaling: decode at 1/2, 1/4 or 1/8 of the size, the largest that
still covers 1600 px), EXIF orientation applied after the draft (fewer pixels to move), an ICC
transform to sRGB only when the file carries a profile, then a cascade: 1600 from the draft,
800 from 1600, 256 from 800, each with LANCZOS and reducing_gap=3.0 (Pillow's reduce() by an
integer factor first, then a Lanczos resize of the rest). JPEG with optimize=True (Huffman
optimisation, 4:2:0 as Pillow's default), WebP with method=4 (libwebp's default, as sharp and
libvips use). No EXIF or ICC is passed to save(), so none is written.
"""

from __future__ import annotations

import io

from PIL import Image, ImageCms, ImageOps

from engines.common import JPEG_QUALITY, SIZES, WEBP_METHOD, WEBP_QUALITY, Output, inside_size

_SRGB = ImageCms.createProfile("sRGB")
_TRANSPOSING = {5, 6, 7, 8}


def render(data: bytes) -> list[Output]:
    with Image.open(io.BytesIO(data)) as opened:
        orientation = opened.getexif().get(0x0112, 1)
        width, height = opened.size
        upright = (height, width) if orientation in _TRANSPOSING else (width, height)
        sizes = [inside_size(*upright, box) for _, box in SIZES]
        if opened.format == "JPEG":
            largest = sizes[0]
            stored = (largest[1], largest[0]) if orientation in _TRANSPOSING else largest
            opened.draft("RGB", stored)
        icc = opened.info.get("icc_profile")
        # exif_transpose copies an upright image; load() it in place instead.
        image = ImageOps.exif_transpose(opened) if orientation != 1 else opened
        image.load()
        if icc:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            image = ImageCms.profileToProfile(image, source, _SRGB, outputMode="RGB") or image
        if image.mode != "RGB":
            image = image.convert("RGB")
        return _cascade(image, sizes)


def _cascade(image: Image.Image, sizes: list[tuple[int, int]]) -> list[Output]:
    outputs: list[Output] = []
    for (name, _), size in zip(SIZES, sizes, strict=True):
        if image.size != size:
            image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        jpeg, webp = io.BytesIO(), io.BytesIO()
        image.save(jpeg, "JPEG", quality=JPEG_QUALITY, optimize=True)
        image.save(webp, "WEBP", quality=WEBP_QUALITY, method=WEBP_METHOD)
        outputs.append(Output(name, "jpeg", *size, jpeg.getvalue()))
        outputs.append(Output(name, "webp", *size, webp.getvalue()))
    return outputs
