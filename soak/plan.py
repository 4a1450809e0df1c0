"""What the soak uploads: files made in code, a share of them hostile, each with a unique name.

Every upload's file name is unique (`soak-00042-jpeg.jpg`): the last segment of a record's key
is that name whatever the route, which is how a record is mapped back to its upload. The
valid files come from a small pool of photos made once per seed (making each one would cost
more CPU than the server's rendering of it); each copy is made unique by its name written
into it (a JPEG comment, a PNG text chunk), so no two uploads share bytes. WebP copies share
the pool's bytes: a duplicate photo is an ordinary upload (its record says `duplicateOf`).
The hostile files are tests/hostile.py's cases that must end FAILED with an error code.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import hostile  # tests/ is on the path: just above
import imagegen as gen

Route = Literal["multipart", "signed", "drop"]
PROCESSED = "PROCESSED"
# 50 MB answered 413 at the edge: an edge limit's test, and 50 MB per upload in the soak.
HOSTILE_LEFT_OUT = frozenset({"too_large"})
POOL_SIZES = ((480, 360), (640, 480), (800, 600), (1024, 768), (1280, 960), (600, 800))
VALID_KINDS = (("jpeg", 0.6), ("webp", 0.25), ("png", 0.15))
PNG_MAX_SIDE = 640  # photo-like PNGs are large: 420 KB at 640x480


@dataclass(frozen=True)
class Shares:
    """How the uploads are split: fractions of all uploads."""

    hostile: float = 0.056
    signed: float = 0.20
    drop: float = 0.016


@dataclass(frozen=True)
class Upload:
    seq: int
    name: str  # unique: the last segment of the record's key
    route: Route
    kind: str  # jpeg, png, webp, or the hostile case's name
    expected: str  # PROCESSED, or the error code of the FAILED record
    content_type: str
    base: bytes = field(repr=False)  # the pool's (or the case's) bytes, made unique by `data`

    @property
    def hostile(self) -> bool:
        return self.expected != PROCESSED

    @property
    def data(self) -> bytes:
        tag = self.name.encode("ascii")
        if self.kind == "jpeg":
            return bytes(gen.with_segments(self.base, [gen.jpeg_segment(0xFE, tag)]))
        if self.kind == "png":
            ihdr_end = 8 + 8 + 13 + 4  # signature, then IHDR's length, type, body, CRC
            text = bytes(gen.png_chunk(b"tEXt", b"Comment\x00" + tag))
            return self.base[:ihdr_end] + text + self.base[ihdr_end:]
        return self.base


class Planner:
    """Hands out uploads in a fixed order given the seed: the same calls, the same uploads."""

    def __init__(self, seed: int, shares: Shares = Shares()) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - reproducible choices, not secrets
        self.shares = shares
        self.seq = 0
        self.pool = _pool(seed)
        cases = [c for c in hostile.corpus() if c.expected != PROCESSED]
        self.cases = [c for c in cases if c.name not in HOSTILE_LEFT_OUT]
        self.rng.shuffle(self.cases)
        self._next_case = 0

    def take(self, count: int) -> list[Upload]:
        return [self._one() for _ in range(count)]

    def again(self, uploads: Sequence[Upload]) -> list[Upload]:
        """The same files by the same routes under new names: an identical batch."""
        return [self._renamed(u) for u in uploads]

    def _renamed(self, upload: Upload) -> Upload:
        self.seq += 1
        return replace(
            upload, seq=self.seq, name=_name(self.seq, upload.kind, Path(upload.name).suffix)
        )

    def _one(self) -> Upload:
        self.seq += 1
        roll = self.rng.random()
        route: Route = (
            "drop"
            if roll < self.shares.drop
            else "signed"
            if roll < self.shares.drop + self.shares.signed
            else "multipart"
        )
        if self.rng.random() < self.shares.hostile:
            return self._hostile(route)
        kind = self.rng.choices([k for k, _ in VALID_KINDS], [w for _, w in VALID_KINDS])[0]
        base = self.rng.choice(self.pool[kind])
        name = _name(self.seq, kind, f".{'jpg' if kind == 'jpeg' else kind}")
        return Upload(self.seq, name, route, kind, PROCESSED, f"image/{kind}", base)

    def _hostile(self, route: Route) -> Upload:
        case = self.cases[self._next_case % len(self.cases)]
        self._next_case += 1
        suffix = Path(case.filename).suffix or ".bin"
        # A signed upload's ticket wants an image type: a hostile client declares one.
        content_type = "image/jpeg" if route == "signed" else case.content_type
        name = _name(self.seq, case.name, suffix)
        return Upload(self.seq, name, route, case.name, case.expected, content_type, case.data)


def _name(seq: int, kind: str, suffix: str) -> str:
    return f"soak-{seq:05d}-{kind.replace('_', '-')}{suffix}"


def _pool(seed: int) -> dict[str, list[bytes]]:
    """Photo-like files of each valid kind, a few sizes each."""
    pool: dict[str, list[bytes]] = {"jpeg": [], "png": [], "webp": []}
    for n, (width, height) in enumerate(POOL_SIZES):
        pixels = gen.photo_pixels(width, height, seed=seed * 100 + n)
        pool["jpeg"].append(gen._save(pixels, "JPEG", quality=85))
        pool["webp"].append(gen._save(pixels, "WEBP", quality=85))
        if max(width, height) <= PNG_MAX_SIDE:
            pool["png"].append(gen._save(pixels, "PNG"))
    return pool
