"""JPEG shrink-on-load against SSIM, bytes and CPU for the on-request fills: imgpipe's default
decode, which leaves at least 1.5x for a Magic Kernel Sharp 2021 resize (1/4 of a 12 MP photo
for a 400x300 fill), against its fast_shrink_on_load (the largest DCT scale that still covers
the result, 1/8 here, then Lanczos3: what ipx's sharp does) and libvips' thumbnail choice
(at least 2x for Lanczos3; Pillow's reducing_gap=2 is the same idea, and thumbor decodes the
photos it must turn at full size). imgpipe's own engine in this process, the choices taking
turns per file; the CPU is this process's over each render; SSIM as the on-request section
scores answers. Last, the floor under any server at the fast scale: libjpeg-turbo's decode
alone, no resize, no encode.

    python bench/shrink_on_load.py    the table for the corpus' first 8 camera-like photos
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import quality
from imgpipe_peer import imgpipe_path
from peer_servers import Request

from imgpipe.config import Settings
from imgpipe.core.img_url import parse_img_path
from imgpipe.core.transform import TransformRequest
from imgpipe.engine import decode
from imgpipe.engine.transform import transform

# (what the page calls it, transform.fast_shrink_on_load, decode._FAST_SHRINK_ON_LOAD)
CHOICES = (
    ("at least 1.5× the result left for Magic Kernel Sharp (imgpipe's default)", False, True),
    ("the largest DCT scale that covers the result, Lanczos3 (fast_shrink_on_load)", True, True),
    ("at least 2× the result left for Lanczos3 (libvips' thumbnail)", True, False),
)


@dataclass(frozen=True)
class Row:
    request: str
    choice: str
    kb: float  # mean bytes per result / 1000
    ssim: float  # mean, against quality.Reference.fill
    cpu_ms: float  # median CPU per render


def measure(files: list[Path], requests: tuple[Request, ...], rounds: int = 2) -> list[Row]:
    """Each request under each choice: every file rendered `rounds` times (the first scored)."""
    references = {f: quality.Reference(f) for f in files}
    datas = {f: f.read_bytes() for f in files}
    rows = []
    for request in requests:
        got: dict[str, tuple[list[int], list[float], list[float]]] = {}
        for _ in range(rounds):
            for file in files:
                for label, fast, fast_jpeg in CHOICES:
                    decode._FAST_SHRINK_ON_LOAD = fast_jpeg  # the engine's lever
                    engine_request = _engine_request(request)._replace(fast_shrink_on_load=fast)
                    sizes, ssims, cpu = got.setdefault(label, ([], [], []))
                    data, seconds = _render(datas[file], engine_request)
                    cpu.append(seconds)
                    if len(sizes) < len(files):
                        sizes.append(len(data))
                        luma = quality.decode_luma(data)
                        ssims.append(quality.ssim(luma, references[file].fill(*luma.shape[::-1])))
        decode._FAST_SHRINK_ON_LOAD = True
        for label, (sizes, ssims, cpu) in got.items():
            kb = statistics.mean(sizes) / 1000
            rows.append(
                Row(request.name, label, kb, statistics.mean(ssims), statistics.median(cpu) * 1000)
            )
    return rows


def decode_floor_ms(files: list[Path], width: int, height: int, rounds: int = 2) -> float:
    """Median CPU of libjpeg-turbo's decode alone, at the largest DCT scale that covers a fill
    of `width` x `height` (fast_shrink_on_load's, and ipx's): what a render at that scale
    costs before any resize, encode or HTTP."""
    import pyvips

    cpu = []
    for _ in range(rounds):
        for file in files:
            data = file.read_bytes()
            shrink = _cover_shrink(pyvips.Image.new_from_buffer(data, ""), width, height)
            started = time.process_time()
            pyvips.Image.new_from_buffer(data, "", shrink=shrink).copy_memory()
            cpu.append(time.process_time() - started)
    return statistics.median(cpu) * 1000


def _cover_shrink(header: Any, width: int, height: int) -> int:
    """The largest JPEG shrink (8, 4, 2, 1) whose decode still covers the fill's resize."""
    stored_w, stored_h = int(header.width), int(header.height)
    if int(header.get("orientation") if header.get_typeof("orientation") else 1) >= 5:
        width, height = height, width
    scale = max(width / stored_w, height / stored_h)
    for shrink in (8, 4, 2):
        if stored_w // shrink >= stored_w * scale and stored_h // shrink >= stored_h * scale:
            return shrink
    return 1


def _engine_request(request: Request) -> TransformRequest:
    """What the /img route asks the engine for this request, with the default settings."""
    settings = Settings()
    render, limits = settings.render_options(), settings.transform.limits()
    path = imgpipe_path("x", request, "").removeprefix("/img")
    url = parse_img_path(path, keys=(), unsafe=True, presets={}, limits=limits)
    encoder = settings.transform.encoder()
    fmt = url.format if url.format not in (None, "best") else request.format
    return TransformRequest(
        url.transform, (fmt,), encoder, render.background, render.limits, limits
    )


def _render(data: bytes, engine_request: TransformRequest) -> tuple[bytes, float]:
    started = time.process_time()
    variant = transform(data, engine_request)
    return variant.data, time.process_time() - started


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    import corpus
    from sections.on_request import REQUESTS, camera_files

    photos = camera_files(corpus.build())
    for row in measure(photos, REQUESTS):
        print(
            f"{row.request} | {row.choice} | {row.kb:.1f} KB | {row.ssim:.4f} | {row.cpu_ms:.0f} ms"
        )
    print(f"decode alone | {decode_floor_ms(photos, REQUESTS[0].width, REQUESTS[0].height):.0f} ms")
