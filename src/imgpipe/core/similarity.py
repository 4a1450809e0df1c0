"""Near-duplicates as pure functions: pHash bands (the index keys), probes, Hamming distance.

A record's 64-bit pHash is split into BANDS = 4 bands of 16 bits; a store indexes each record
under (band i, value of band i). Two hashes within Hamming distance d differ in at most
floor(d / 4) bits in at least one band (pigeonhole: were every band off by more, the total
would exceed d). So looking up, in every band, the query's value and every value within
`probe_radius(d)` bits of it finds every record within d: full recall, no scan. For the
supported d <= MAX_DISTANCE = 7 that is 4 x (1 + 16) = 68 lookups; d <= 3 needs only 4.

Why 16-bit bands: each lookup then hits about N / 65536 records (15 at 1M images, if hash
values spread evenly), so a query reads ~68 x 15 ~ 1,000 index entries at 1M. Eight 8-bit
bands would need only 8 exact lookups for d <= 7, but each bucket holds N / 256 (3,900 at 1M):
~31,000 entries a query. Flat images (a solid colour, a blank page) all hash alike, so their
bucket grows with them; a store caps what it reads per lookup at CANDIDATES_PER_LOOKUP, and
past that cap (only there) the answer is approximate.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import TypeGuard

from imgpipe.core.model import ImageRecord

HASH_BITS = 64
BANDS = 4
BAND_BITS = HASH_BITS // BANDS
BAND_HEX = BAND_BITS // 4
MAX_DISTANCE = 2 * BANDS - 1  # probe radius 1: 17 values per band
CANDIDATES_PER_LOOKUP = 2000


@dataclass(frozen=True)
class PhashHit:
    """A record found through the band index: its id, its pHash and the distance to the query."""

    image_id: str
    phash: str
    distance: int


@dataclass(frozen=True)
class Match:
    """A similar image as GET /images/{id}/similar lists it."""

    record: ImageRecord
    distance: int
    same_bytes: bool


def valid_phash(phash: str | None) -> TypeGuard[str]:
    if phash is None or len(phash) != HASH_BITS // 4:
        return False
    try:
        int(phash, 16)
    except ValueError:
        return False
    return True


def bands(phash: str) -> tuple[str, ...]:
    """The BANDS index keys of a pHash: its 16-bit slices as 4 lowercase hex digits."""
    value = phash.lower()
    return tuple(value[i * BAND_HEX : (i + 1) * BAND_HEX] for i in range(BANDS))


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def probe_radius(max_distance: int) -> int:
    """How many bits a band may differ by and still hold a hash within max_distance."""
    return max_distance // BANDS


def neighbours(band_value: str, radius: int) -> list[str]:
    """Every band value within `radius` bits of `band_value` (itself first)."""
    value = int(band_value, 16)
    out = []
    for r in range(radius + 1):
        for bits in combinations(range(BAND_BITS), r):
            flipped = value
            for bit in bits:
                flipped ^= 1 << bit
            out.append(f"{flipped:0{BAND_HEX}x}")
    return out


def probes(phash: str, max_distance: int) -> list[tuple[int, str]]:
    """The (band, value) lookups that together find every hash within max_distance."""
    if not 0 <= max_distance <= MAX_DISTANCE:
        raise ValueError(f"max_distance must be 0..{MAX_DISTANCE}")
    radius = probe_radius(max_distance)
    return [(i, v) for i, band in enumerate(bands(phash)) for v in neighbours(band, radius)]


def nearest(
    candidates: dict[str, str], phash: str, max_distance: int, limit: int
) -> list[PhashHit]:
    """From {imageId: pHash} found through the bands, those within max_distance, closest
    first (ties by imageId), at most `limit`."""
    hits = [
        PhashHit(image_id, other, distance)
        for image_id, other in candidates.items()
        if valid_phash(other) and (distance := hamming(phash, other)) <= max_distance
    ]
    hits.sort(key=lambda h: (h.distance, h.image_id))
    return hits[:limit]


def uploaded_before(a: ImageRecord, b: ImageRecord) -> bool:
    """Whether `a` came first: earlier uploadedAt, ties by imageId (the order of duplicateOf)."""
    return (a.uploaded_at, a.image_id) < (b.uploaded_at, b.image_id)


def match(target: ImageRecord, other: ImageRecord, max_distance: int) -> Match | None:
    """How `other`, as stored now, relates to `target`; None when it is not similar (any more)."""
    if other.image_id == target.image_id:
        return None
    same_bytes = target.sha256 is not None and other.sha256 == target.sha256
    if valid_phash(target.phash) and valid_phash(other.phash):
        distance = hamming(target.phash, other.phash)
    else:
        distance = 0 if same_bytes else max_distance + 1
    if distance > max_distance and not same_bytes:
        return None
    return Match(other, distance, same_bytes)


def ranked(matches: list[Match]) -> list[Match]:
    """Closest first; at equal distance the same bytes first, then the earliest upload."""
    return sorted(
        matches,
        key=lambda m: (m.distance, not m.same_bytes, m.record.uploaded_at, m.record.image_id),
    )
