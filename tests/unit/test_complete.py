"""core.complete: a result is whole or cut short, told from its own structure (the derived
cache's files are written without fsync). Real encodes of every output format, each cut at
every length short of whole, and garbage that must never pass."""

from __future__ import annotations

import pytest
import pyvips
from hypothesis import given
from hypothesis import strategies as st

import imagegen
from imgpipe.core.complete import complete


def _encoded(fmt: str, *, keep_exif: bool = False) -> bytes:
    image = pyvips.Image.new_from_buffer(imagegen.photo_jpeg(96, 64), "")
    keep = "all" if keep_exif else "none"
    savers = {
        "jpeg": lambda: image.jpegsave_buffer(Q=80, keep=keep),
        "progressive jpeg": lambda: image.jpegsave_buffer(Q=80, interlace=True, keep=keep),
        "png": lambda: image.pngsave_buffer(keep=keep),
        "webp": lambda: image.webpsave_buffer(Q=80, keep=keep),
        "avif": lambda: image.heifsave_buffer(Q=50, compression="av1", effort=0, keep=keep),
    }
    return bytes(savers[fmt]())


def _pillow(fmt: str) -> bytes:
    """Pillow's encoders write imgpipe's JPEG and WebP results by default (engine.writers)."""
    import io

    from PIL import Image

    out = io.BytesIO()
    with Image.open(io.BytesIO(imagegen.photo_jpeg(96, 64))) as image:
        if fmt == "pillow jpeg":
            image.save(out, "JPEG", quality=80, optimize=True, subsampling=2)
        elif fmt == "pillow progressive jpeg":
            image.save(out, "JPEG", quality=80, optimize=True, progressive=True)
        else:
            image.save(out, "WEBP", quality=80, method=4)
    return out.getvalue()


FORMATS = ["jpeg", "progressive jpeg", "png", "webp", "avif"]
PILLOW_FORMATS = ["pillow jpeg", "pillow progressive jpeg", "pillow webp"]


@pytest.mark.parametrize("fmt", FORMATS + PILLOW_FORMATS)
def test_a_whole_result_is_complete_and_every_cut_of_it_is_not(fmt: str) -> None:
    data = _pillow(fmt) if fmt.startswith("pillow") else _encoded(fmt)
    assert complete(data)
    cut_short = [n for n in range(len(data)) if complete(data[:n])]
    assert cut_short == []


def test_a_jpeg_cut_at_its_exif_thumbnails_end_is_not_complete() -> None:
    """An EXIF thumbnail is a JPEG inside the JPEG: a cut right after its EOI ends in FF D9."""
    thumbnail = _encoded("jpeg")
    app1 = b"Exif\x00\x00" + thumbnail
    outer = _encoded("jpeg")
    data = outer[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + outer[2:]
    assert complete(data)
    cut = 2 + 4 + len(app1)
    assert data[:cut].endswith(b"\xff\xd9")
    assert not complete(data[:cut])


@given(st.binary(max_size=512))
def test_garbage_is_never_complete_and_never_raises(data: bytes) -> None:
    for framed in (data, b"\xff\xd8\xff" + data, b"RIFF" + data, b"\x00\x00\x00\x18ftyp" + data):
        assert complete(framed) in (True, False)
    assert not complete(b"\xff\xd8\xff" + data.replace(b"\xff\xd9", b"") + b"\xff")


def test_what_is_no_output_format_is_not_complete() -> None:
    assert not complete(b"")
    assert not complete(b"GIF89a" + bytes(20))
    box_to_the_end = b"\x00\x00\x00\x00ftypavif" + bytes(8)  # size 0: nothing tells a cut
    assert not complete(box_to_the_end)
