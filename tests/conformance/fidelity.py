"""One conformance case end to end: a suite's file through imgpipe's render (what a rendering
process runs), its renditions checked as a user gets them (no metadata, upright, the planned
sizes), and imgpipe's decode compared with an independent oracle's (oracle.py)."""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from oracle import Pixels, imgpipe_pixels, pillow_pixels, psnr, tiff2rgba_pixels
from PIL import Image
from suites import reference_for

from imgpipe.config import Settings
from imgpipe.core.errors import ImageError, UnsupportedFormatError
from imgpipe.core.formats import sniff
from imgpipe.core.rendering import RenderResult
from imgpipe.engine import geometry, render

FAITHFUL_DB = 30.0  # below this, imgpipe and the oracle show a visibly different picture
OPTIONS = Settings().render_options()
MANIFESTS = Path(__file__).parent / "manifests"
_XMP_KEYS = ("xmp", "XML:com.adobe.xmp")
MAX_MESSAGE = 300  # as tests/integration/test_hostile_corpus.py holds every refusal to


@dataclass(frozen=True)
class Outcome:
    """What imgpipe did with one file, and how close its pixels are to the oracle's."""

    verdict: str  # "processed" or "refused"
    format: str  # imgpipe's name for it, from its first bytes; "other" for none of its inputs
    code: str | None = None  # the refusal's code
    psnr: float | None = None  # dB against the oracle; None where the oracle cannot read it
    oracle: str | None = None
    problems: tuple[str, ...] = ()  # what a rendition got wrong
    rendition_psnr: float | None = None  # dB, the largest WebP rendition against the oracle
    message: str = ""  # the refusal's message, as the record and the API give it


def run_case(suite: str, path: Path) -> Outcome:
    """Render the file as a rendering process does; judge what comes out."""
    data = path.read_bytes()
    try:
        result = render(data, OPTIONS)
    except ImageError as exc:  # anything else is a crash, and fails its test as such
        return Outcome("refused", sniffed(data), code=exc.code, message=str(exc))
    ours = imgpipe_pixels(data)
    problems = rendition_problems(result, (ours.shape[1], ours.shape[0]))
    theirs, oracle = _oracle(suite, result.metadata.format, path, data, ours)
    if theirs is None:
        return Outcome("processed", result.metadata.format, problems=problems)
    score, shown = round(psnr(ours, theirs), 2), round(rendition_psnr(result, theirs), 2)
    return Outcome("processed", result.metadata.format, None, score, oracle, problems, shown)


def _oracle(
    suite: str, fmt: str, path: Path, data: bytes, ours: Pixels
) -> tuple[Pixels | None, str | None]:
    """The suite's reference picture where it has one, else Pillow's reading (pillow-heif's
    for HEIF), or libtiff's tiff2rgba where that agrees better for a TIFF: Pillow's TIFF
    reader is weaker than libtiff's. None where no oracle reads the file."""
    reference = reference_for(suite, path)
    if reference is not None:
        picture = pillow_pixels(reference.read_bytes())
        return picture, reference.name
    name = "pillow-heif" if fmt in ("heif", "heic") or suite == "pillow-heif" else "pillow"
    try:
        theirs: Pixels | None = pillow_pixels(data)
    except Exception:  # the oracle failing to read a file is a fact, not a bug
        theirs = None
    if fmt == "tiff" and (theirs is None or psnr(ours, theirs) < FAITHFUL_DB):
        libtiff = tiff2rgba_pixels(path)
        if libtiff is not None and (theirs is None or psnr(ours, libtiff) > psnr(ours, theirs)):
            return libtiff, "tiff2rgba"
    return theirs, (None if theirs is None else name)


def rendition_psnr(result: RenderResult, theirs: Pixels) -> float:
    """What a user gets: the largest WebP rendition (lossy, alpha kept) against the oracle's
    picture resized to its size by Pillow, both in premultiplied RGBA."""
    largest = max(
        (r for r in result.renditions if r.format == "webp"), key=lambda r: r.width * r.height
    )
    with Image.open(io.BytesIO(largest.data)) as image:
        shown = np.asarray(image.convert("RGBA"), dtype=np.uint8)
    resized = Image.fromarray(theirs, "RGBA").resize(
        (largest.width, largest.height), Image.Resampling.LANCZOS
    )
    return psnr(shown, np.asarray(resized, dtype=np.uint8))


def sniffed(data: bytes) -> str:
    try:
        return sniff(data)
    except UnsupportedFormatError:
        return "other"


def rendition_problems(result: RenderResult, upright: tuple[int, int]) -> tuple[str, ...]:
    """Every rendition: the configured set, each at the size planned from the upright image,
    decodable, no EXIF, ICC profile or XMP left in it."""
    meta = result.metadata
    problems = []
    if (meta.width, meta.height) != upright:
        problems.append(f"size {meta.width}x{meta.height} but decoded {upright[0]}x{upright[1]}")
    specs = {spec.name: spec for spec in OPTIONS.renditions}
    wanted = {(spec.name, fmt) for spec in OPTIONS.renditions for fmt in spec.formats}
    if {(r.name, r.format) for r in result.renditions} != wanted:
        problems.append("not every configured rendition was produced")
    for r in result.renditions:
        spec = specs[r.name]
        planned = geometry.target_size(*upright, spec.width, spec.height, spec.fit)
        with Image.open(io.BytesIO(r.data)) as image:
            image.load()
            if image.size != planned or (r.width, r.height) != planned:
                problems.append(f"{r.name}.{r.format} is {image.size}, planned {planned}")
            if image.getexif():
                problems.append(f"{r.name}.{r.format} keeps EXIF")
            if "icc_profile" in image.info or any(k in image.info for k in _XMP_KEYS):
                problems.append(f"{r.name}.{r.format} keeps an ICC profile or XMP")
    return tuple(problems)


# --- manifests ---------------------------------------------------------------------------------


def expected_entry(outcome: Outcome) -> dict[str, Any]:
    """A manifest entry from a run: the verdict, and for a processed file the least PSNR a
    later run must reach (what it scored, rounded down, less a margin of 1 dB)."""
    entry: dict[str, Any] = {"verdict": outcome.verdict, "format": outcome.format}
    if outcome.verdict == "refused":
        entry["code"] = outcome.code
        return entry
    entry["oracle"] = outcome.oracle
    if outcome.psnr is not None:
        entry["psnr"] = outcome.psnr
        entry["min_psnr"] = _least(outcome.psnr)
    if outcome.rendition_psnr is not None:
        entry["rendition_psnr"] = outcome.rendition_psnr
        entry["min_rendition_psnr"] = _least(outcome.rendition_psnr)
    return entry


def _least(score: float) -> float:
    """What a later run must reach: the score rounded down, less a margin of 1 dB (60 at
    most: past that, two pictures are the same)."""
    return float(max(0, min(60, math.floor(score) - 1)))


def failures(entry: dict[str, Any], outcome: Outcome) -> list[str]:
    """How an outcome falls short of its manifest entry (none: the case passes). A refusal
    coded `internal` is a 500, and never what a file is expected to get."""
    found = []
    if outcome.code == "internal":
        found.append("refused as internal (a 500)")
    if outcome.verdict != entry["verdict"] or outcome.code != entry.get("code"):
        found.append(f"{outcome.verdict} {outcome.code or ''}, expected {entry['verdict']} "
                     f"{entry.get('code') or ''}")  # fmt: skip
    if outcome.verdict == "refused" and not _readable(outcome.message):
        found.append(f"refusal message not one short printable line: {outcome.message!r}")
    found.extend(outcome.problems)
    minimum = entry.get("min_psnr")
    if minimum is not None and (outcome.psnr is None or outcome.psnr < minimum):
        found.append(f"PSNR {outcome.psnr} dB against {outcome.oracle}, expected >= {minimum}")
    shown = entry.get("min_rendition_psnr")
    if shown is not None and (outcome.rendition_psnr is None or outcome.rendition_psnr < shown):
        found.append(f"rendition PSNR {outcome.rendition_psnr} dB, expected >= {shown}")
    return found


def _readable(message: str) -> bool:
    return 0 < len(message) < MAX_MESSAGE and message.isprintable()


def load_manifest(suite: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((MANIFESTS / f"{suite}.json").read_text())
    return loaded


def save_manifest(suite: str, manifest: dict[str, Any]) -> None:
    MANIFESTS.mkdir(exist_ok=True)
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    (MANIFESTS / f"{suite}.json").write_text(text)
