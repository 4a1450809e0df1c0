"""A still AVIF (two image items: colour, and alpha as its auxiliary image) made from the first
frame of an AVIF image sequence's colour and alpha tracks, for the tests that need an AVIF no
registry ships.

Pillow's `avif/star.avifs` codes its alpha in limited range (16-235), which no still AVIF a
registry ships does and Debian's avifenc (0.11) never writes. Its tracks' first samples are
key frames, so each is a whole AV1 image: this copies them, with their `av1C` boxes, into the
boxes of a still image (ISO/IEC 23008-12, HEIF; the AVIF specification, its section 4 on
alpha): `ftyp`, `meta` (`hdlr` pict, `pitm`, `iinf`, `iloc`, `iref` auxl, `iprp` with the
items' properties and `ipma`), then `mdat`. Nothing is re-encoded: the pixels are the
sequence's own.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

from imgpipe.engine.avif_range import boxes

ALPHA_URN = b"urn:mpeg:mpegB:cicp:systems:auxiliary:alpha\0"
_VISUAL_SAMPLE_ENTRY = 78  # SampleEntry (8) + VisualSampleEntry's fields (70) before its boxes


class Track(NamedTuple):
    """What a still image item needs of one track: its first sample and how to decode it."""

    handler: bytes  # hdlr's handler_type: b"pict" (colour) or b"auxv" (alpha)
    width: int
    height: int
    av1c: bytes  # the av1C box's payload, as it is
    sample: bytes  # the first sample: a key frame, a whole AV1 image


def still_from_sequence(sequence: bytes) -> bytes:
    """A still AVIF of `sequence`'s first frame: its colour track as the primary item, its
    alpha track (if any) as that item's auxiliary alpha image."""
    tracks = [_track(sequence, *trak) for trak in _all(sequence, 0, len(sequence), b"moov/trak")]
    (colour,) = [t for t in tracks if t.handler == b"pict"]
    alphas = [t for t in tracks if t.handler == b"auxv"]
    items = [colour, *alphas[:1]]
    return still(items)


def still(items: list[Track]) -> bytes:
    """A still AVIF of `items`' samples: the first the primary item, the second (if any) its
    auxiliary alpha image."""
    colour = items[0]
    if any((t.width, t.height) != (colour.width, colour.height) for t in items):
        raise ValueError("the alpha track's size is not the colour track's")  # one ispe for both
    ftyp = _box(b"ftyp", b"avif" + bytes(4) + b"avifmif1miaf")
    meta = _meta(items, mdat_at=0)
    meta = _meta(items, mdat_at=len(ftyp) + len(meta) + 8)  # the same size, true offsets
    return ftyp + meta + _box(b"mdat", b"".join(t.sample for t in items))


# --- reading the sequence ----------------------------------------------------------------

_SKIP = {b"stsd": 8, b"av01": _VISUAL_SAMPLE_ENTRY}  # bytes before a container's boxes


def _all(data: bytes, start: int, end: int, path: bytes) -> Iterator[tuple[int, int]]:
    """(payload start, end) of every box at `path` ("moov/trak") below `start`..`end`."""
    first, _, rest = path.partition(b"/")
    for kind, a, b in boxes(data, start, end):
        if kind != first:
            continue
        if not rest:
            yield a, b
        else:
            yield from _all(data, a + _SKIP.get(kind, 0), b, rest)


def _one(data: bytes, start: int, end: int, path: bytes) -> tuple[int, int]:
    found = list(_all(data, start, end, path))
    if len(found) != 1:
        raise ValueError(f"{len(found)} {path!r} boxes where one was expected")
    return found[0]


def _track(data: bytes, start: int, end: int) -> Track:
    hdlr, _ = _one(data, start, end, b"mdia/hdlr")
    stbl = _one(data, start, end, b"mdia/minf/stbl")
    entry, _ = _one(data, *stbl, b"stsd/av01")
    width, height = struct.unpack_from(">HH", data, entry + 24)
    av1c = _one(data, *stbl, b"stsd/av01/av1C")
    return Track(
        handler=data[hdlr + 8 : hdlr + 12],  # FullBox header, pre_defined, handler_type
        width=width,
        height=height,
        av1c=data[av1c[0] : av1c[1]],
        sample=_first_sample(data, *stbl),
    )


def _first_sample(data: bytes, start: int, end: int) -> bytes:
    """The first sample: the first entry of stsz (or its common size), at the first chunk's
    offset in stco (32-bit) or co64 (64-bit); it is the first sample of that chunk."""
    stsz, _ = _one(data, start, end, b"stsz")
    common, count = struct.unpack_from(">II", data, stsz + 4)
    if count == 0:
        raise ValueError("the track has no sample")
    size = common or struct.unpack_from(">I", data, stsz + 12)[0]
    narrow, wide = list(_all(data, start, end, b"stco")), list(_all(data, start, end, b"co64"))
    (offsets_at, _), *_ = narrow or wide  # version and flags, entry_count, then the offsets
    (offset,) = struct.unpack_from(">I" if narrow else ">Q", data, offsets_at + 8)
    if offset + size > len(data):
        raise ValueError("the first sample lies past the end of the file")
    return data[offset : offset + size]


# --- writing the still image -------------------------------------------------------------


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _full(kind: bytes, payload: bytes, version: int = 0, flags: int = 0) -> bytes:
    return _box(kind, struct.pack(">I", version << 24 | flags) + payload)


def _pixi(av1c: bytes) -> bytes:
    """Channels and bits per channel, from av1C's monochrome, high_bitdepth and twelve_bit."""
    flags = av1c[2]
    depth = 12 if flags & 0x20 else 10 if flags & 0x40 else 8
    channels = 1 if flags & 0x10 else 3
    return _full(b"pixi", bytes([channels, *[depth] * channels]))


def _meta(items: list[Track], mdat_at: int) -> bytes:
    """The meta box of items 1 (colour, primary) and 2 (alpha, if any), whose samples lie one
    after the other from `mdat_at`."""
    ids = range(1, len(items) + 1)
    infe = b"".join(_full(b"infe", struct.pack(">HH4s", i, 0, b"av01") + b"\0", 2) for i in ids)
    locations, at = [], mdat_at
    for i, track in zip(ids, items, strict=True):
        locations.append(struct.pack(">HHHII", i, 0, 1, at, len(track.sample)))
        at += len(track.sample)
    # offset_size 4, length_size 4, base_offset_size 0; one extent per item
    iloc = _full(b"iloc", bytes([0x44, 0x00]) + struct.pack(">H", len(items)) + b"".join(locations))
    colour = items[0]
    properties = [
        _box(b"av1C", colour.av1c),
        _full(b"ispe", struct.pack(">II", colour.width, colour.height)),
        _pixi(colour.av1c),
    ]
    links = [(1, [0x81, 0x02, 0x83])]  # av1C essential, ispe, pixi
    references = b""
    if len(items) == 2:  # colour and alpha
        alpha = items[1]
        properties += [_box(b"av1C", alpha.av1c), _pixi(alpha.av1c), _full(b"auxC", ALPHA_URN)]
        links.append((2, [0x84, 0x02, 0x85, 0x06]))  # av1C essential, ispe, pixi, auxC
        references = _full(b"iref", _box(b"auxl", struct.pack(">HHH", 2, 1, 1)))
    ipma = struct.pack(">I", len(links)) + b"".join(
        struct.pack(">HB", item, len(indexes)) + bytes(indexes) for item, indexes in links
    )
    iprp = _box(b"iprp", _box(b"ipco", b"".join(properties)) + _full(b"ipma", ipma))
    return _full(
        b"meta",
        _full(b"hdlr", bytes(4) + b"pict" + bytes(12) + b"\0")
        + _full(b"pitm", struct.pack(">H", 1))
        + _full(b"iinf", struct.pack(">H", len(items)) + infe)
        + iloc
        + references
        + iprp,
    )


# --- taking the colr boxes out of a still AVIF -------------------------------------------


def without_colr(avif: bytes) -> bytes:
    """`avif` with every `colr` property taken out of its `ipco` and its links out of `ipma`:
    an AVIF whose items say nothing of their colour but what their AV1 data says. The `meta`
    box shrinks; a top-level `free` box after it takes up the bytes it lost, so the items'
    offsets in `iloc` stay true."""
    out = b""
    for kind, a, b in boxes(avif, 0, len(avif)):
        if kind != b"meta":
            out += avif[a - 8 : b]  # avifenc writes 32-bit box sizes
            continue
        children = b"".join(
            _box(k, _iprp_without_colr(avif, x, y) if k == b"iprp" else avif[x:y])
            for k, x, y in boxes(avif, a + 4, b)  # meta is a FullBox
        )
        meta = _box(b"meta", avif[a : a + 4] + children)
        lost = b - (a - 8) - len(meta)
        out += meta + _box(b"free", bytes(lost - 8))
    return out


def _iprp_without_colr(data: bytes, start: int, end: int) -> bytes:
    properties = list(boxes(data, *_one(data, start, end, b"ipco")))
    gone = [i for i, (kind, _, _) in enumerate(properties, 1) if kind == b"colr"]
    kept = b"".join(_box(k, data[a:b]) for k, a, b in properties if k != b"colr")
    out = b""
    for kind, a, b in boxes(data, start, end):
        payload = kept if kind == b"ipco" else data[a:b]
        out += _box(kind, _ipma_without(payload, gone) if kind == b"ipma" else payload)
    return out


def _ipma_without(payload: bytes, gone: list[int]) -> bytes:
    """An ipma payload without links to the (1-based) properties in `gone`, the rest
    renumbered as they stand once those are taken out of ipco."""
    version, flags = payload[0], payload[3]
    item_size, link_size = (2 if version == 0 else 4), (2 if flags & 1 else 1)
    mask = 0x7FFF if flags & 1 else 0x7F
    (count,) = struct.unpack_from(">I", payload, 4)
    out, at = payload[:8], 8
    for _ in range(count):
        item, links = payload[at : at + item_size], payload[at + item_size]
        at += item_size + 1
        kept = []
        for _ in range(links):
            value = int.from_bytes(payload[at : at + link_size], "big")
            at += link_size
            index = value & mask
            if index not in gone:
                renumbered = (value & ~mask) | (index - sum(1 for g in gone if g < index))
                kept.append(renumbered.to_bytes(link_size, "big"))
        out += item + bytes([len(kept)]) + b"".join(kept)
    return out
