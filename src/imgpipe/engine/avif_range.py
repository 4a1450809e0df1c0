"""AVIF planes libheif leaves in limited range: which they are, read from the AV1 sequence
headers in the file's `av1C` boxes (or its `colr` boxes, or its items' AV1 data), and the
expansion to full range.

libheif (in libvips 8.18.7) converts a limited-range YCbCr image to full-range RGB, but hands
on a monochrome image's grey and an alpha plane as they are coded: 16-235 where 0-255 is
meant (link-u's `*.monochrome.avif` and `*alpha-limited*` samples). The range is the
`color_range` bit of each AV1 item's sequence header: the one in its `av1C` box; where that
box has none, the full_range_flag of the item's `colr` box of type nclx; where it has none
either, the sequence header in the item's own AV1 data (found through `iloc`). The alpha item
is the one whose `auxC` names alpha. Anything this reader cannot follow is taken as full range
and leaves the image as libvips decoded it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

from imgpipe.engine.vips import VipsImage

_ALPHA_URNS = (b"urn:mpeg:mpegB:cicp:systems:auxiliary:alpha", b"urn:mpeg:hevc:2015:auxid:1")
_SEQUENCE_HEADER_OBU = 1
# OBUs that end the search: a sequence header comes before any frame it applies to.
_FRAME_OBUS = frozenset({3, 4, 6, 7, 8})  # frame header, tile group, frame, redundant, list
_MAX_OBUS = 16  # what may come first (temporal delimiter, metadata, padding) is a few OBUs


class Limited(NamedTuple):
    """What of a decoded AVIF is in limited range and should be expanded."""

    grey: bool  # the primary image is monochrome and limited range
    alpha: bool  # the alpha plane is limited range


def limited_planes(data: bytes) -> Limited:
    """Which planes of the AVIF in `data` libheif leaves in limited range."""
    try:
        return _limited(data)
    except (IndexError, ValueError, struct.error):
        return Limited(grey=False, alpha=False)


def expand(image: VipsImage, limited: Limited) -> VipsImage:
    """`image` (8-bit, colour bands then alpha) with its limited-range planes at 0-255."""
    colour = image.bands - 1 if image.hasalpha() else image.bands
    bands = [image[i] for i in range(image.bands)]
    if limited.grey:
        bands[:colour] = [_full(band) for band in bands[:colour]]
    if limited.alpha and image.hasalpha():
        bands[-1] = _full(bands[-1])
    if not (limited.grey or limited.alpha):
        return image
    return bands[0].bandjoin(bands[1:]).copy(interpretation=image.interpretation)


def _full(band: VipsImage) -> VipsImage:
    """16-235 to 0-255 (BT.601's luma range, which AV1 uses for limited range)."""
    return ((band - 16) * (255 / 219)).cast("uchar")


def _limited(data: bytes) -> Limited:
    meta = _child(data, 0, len(data), b"meta", full=False)
    if meta is None:
        return Limited(grey=False, alpha=False)
    start, end = meta[0] + 4, meta[1]  # meta is a FullBox
    primary = _primary(data, start, end)
    iprp = _child(data, start, end, b"iprp", full=False)
    if iprp is None:
        return Limited(grey=False, alpha=False)
    ipco = _child(data, *iprp, b"ipco", full=False)
    if ipco is None:
        return Limited(grey=False, alpha=False)
    properties = [(kind, data[a:b]) for kind, a, b in boxes(data, *ipco)]
    owners = _associations(data, *iprp)
    iloc = _child(data, start, end, b"iloc", full=False)
    grey = alpha = False
    for item, indexes in owners.items():
        known = [properties[i - 1] for i in indexes if 0 < i <= len(properties)]
        kinds = dict(known)
        av1c = kinds.get(b"av1C")
        if av1c is None:
            continue
        mono, coded_range = _colour_config(av1c)
        full_range = _range_of(data, iloc, item, coded_range, known)
        is_alpha = any(urn in kinds.get(b"auxC", b"") for urn in _ALPHA_URNS)
        if is_alpha:
            alpha = alpha or not full_range
        elif item == primary:
            grey = mono and not full_range
    return Limited(grey=grey, alpha=alpha)


def boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, end) of each ISO BMFF box between `start` and `end`; a ValueError
    for a box that overruns them."""
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, at)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, at + 8)
            header = 16
        elif size == 0:
            size = end - at
        if size < header or at + size > end:
            raise ValueError("a box overruns its parent")
        yield kind, at + header, at + size
        at += size


def _child(data: bytes, start: int, end: int, kind: bytes, *, full: bool) -> tuple[int, int] | None:
    for found, a, b in boxes(data, start, end):
        if found == kind:
            return (a + 4 if full else a), b
    return None


def _primary(data: bytes, start: int, end: int) -> int:
    pitm = _child(data, start, end, b"pitm", full=False)
    if pitm is None:
        return 1
    version = data[pitm[0]]
    fmt = ">H" if version == 0 else ">I"
    return int(struct.unpack_from(fmt, data, pitm[0] + 4)[0])


def _associations(data: bytes, start: int, end: int) -> dict[int, list[int]]:
    """Item id -> its property indexes (1-based), over every ipma box (some files have two)."""
    owners: dict[int, list[int]] = {}
    for kind, a, _ in boxes(data, start, end):
        if kind != b"ipma":
            continue
        version, flags = data[a], int.from_bytes(data[a + 1 : a + 4], "big")
        (count,) = struct.unpack_from(">I", data, a + 4)
        at = a + 8
        for _ in range(count):
            item = int.from_bytes(data[at : at + (2 if version == 0 else 4)], "big")
            at += 2 if version == 0 else 4
            links = data[at]
            at += 1
            for _ in range(links):
                wide = flags & 1
                value = int.from_bytes(data[at : at + (2 if wide else 1)], "big")
                at += 2 if wide else 1
                owners.setdefault(item, []).append(value & (0x7FFF if wide else 0x7F))
    return owners


def _range_of(
    data: bytes,
    iloc: tuple[int, int] | None,
    item: int,
    in_av1c: bool | None,
    properties: list[tuple[bytes, bytes]],
) -> bool:
    """Full range by the first source that knows it: av1C's sequence header, the nclx colr,
    the sequence header in the item's data (read only where the boxes say nothing). Known by
    none, it is taken as full (the image is left as decoded)."""
    for known in (in_av1c, _nclx_range(properties)):
        if known is not None:
            return known
    in_data = _item_range(data, iloc, item)
    return True if in_data is None else in_data


def _nclx_range(properties: list[tuple[bytes, bytes]]) -> bool | None:
    """Full range by the item's `colr` box of type nclx (its full_range_flag), where av1C
    carries no sequence header (libavif 0.11's avifenc writes none); None without one."""
    for kind, payload in properties:
        if kind == b"colr" and payload[:4] == b"nclx":
            return bool(payload[10] & 0x80)  # after the primaries, transfer and matrix
    return None


def _item_range(data: bytes, iloc: tuple[int, int] | None, item: int) -> bool | None:
    """Full range by the sequence header in the item's own AV1 data; None where the data
    cannot be had or read (an item stored elsewhere, a cut or garbled file)."""
    if iloc is None:
        return None
    try:
        stream = _item_data(data, *iloc, item)
        return None if stream is None else _sequence_range(stream)
    except (IndexError, ValueError):
        return None


def _item_data(data: bytes, start: int, end: int, item: int) -> bytes | None:
    """The item's bytes by its `iloc` entry (ISO/IEC 14496-12, 8.11.3), in this file only
    (construction method 0, data reference 0): None for any other or none."""
    fields = _Fields(data, start, end)
    version, _ = fields.uint(1), fields.uint(3)
    if version > 2:
        return None
    sizes, more = fields.uint(1), fields.uint(1)
    offset_size, length_size = sizes >> 4, sizes & 0xF
    base_size, index_size = more >> 4, (more & 0xF if version else 0)
    wide = 4 if version == 2 else 2
    for _ in range(fields.uint(wide)):  # each entry reads bytes of iloc: bounded by its size
        found = fields.uint(wide)
        method = fields.uint(2) & 0xF if version else 0
        reference, base = fields.uint(2), fields.uint(base_size)
        extents = []
        for _ in range(fields.uint(2)):
            fields.uint(index_size)
            extents.append((base + fields.uint(offset_size), fields.uint(length_size)))
        if found == item:
            return _extents(data, extents) if method == 0 and reference == 0 else None
    return None


def _extents(data: bytes, extents: list[tuple[int, int]]) -> bytes | None:
    """The extents' bytes end to end; None where one lies past the end of the file (a cut
    file) or has length 0 ("the rest of the file"), or where together they would be more
    than the file (overlapping extents repeated: never a real item)."""
    if any(length == 0 or offset + length > len(data) for offset, length in extents):
        return None
    if sum(length for _, length in extents) > len(data):
        return None
    return b"".join(data[offset : offset + length] for offset, length in extents)


class _Fields:
    """Big-endian unsigned fields of one box's payload, never read past its end."""

    def __init__(self, data: bytes, start: int, end: int) -> None:
        self.data, self.at, self.end = data, start, end

    def uint(self, size: int) -> int:
        if self.at + size > self.end:
            raise ValueError("a field overruns its box")
        value = int.from_bytes(self.data[self.at : self.at + size], "big")
        self.at += size
        return value


def _colour_config(av1c: bytes) -> tuple[bool, bool | None]:
    """(monochrome, full range) from an av1C payload: its sequence header OBU says the range;
    without one the range is not known here (None)."""
    return bool(av1c[2] & 0x10), _sequence_range(av1c[4:])


def _sequence_range(obus: bytes) -> bool | None:
    """Full range by the first sequence header OBU among `obus` (AV1 spec 5.3: obu_header,
    then obu_size where it has one, else the rest); None where none comes before a frame."""
    at = 0
    for _ in range(_MAX_OBUS):
        if at >= len(obus):
            break
        header = obus[at]
        kind, extension, has_size = (header >> 3) & 0xF, header & 4, header & 2
        if kind in _FRAME_OBUS:
            break
        at += 2 if extension else 1
        size, at = _leb128(obus, at) if has_size else (len(obus) - at, at)
        if kind == _SEQUENCE_HEADER_OBU:
            return _full_range(_Bits(obus[at : at + size]))
        at += size
    return None


def _leb128(data: bytes, at: int) -> tuple[int, int]:
    value = 0
    for i in range(8):
        byte = data[at + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, at + i + 1
    raise ValueError("leb128 longer than 8 bytes")


class _Bits:
    """Bits of a byte string, most significant first (AV1's f(n))."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def read(self, count: int) -> int:
        value = 0
        for _ in range(count):
            byte = self.data[self.at >> 3]  # IndexError past the end: caught by the caller
            value = (value << 1) | ((byte >> (7 - (self.at & 7))) & 1)
            self.at += 1
        return value

    def uvlc(self) -> int:
        zeros = 0
        while not self.read(1):
            zeros += 1
            if zeros >= 32:
                raise ValueError("uvlc too long")
        return self.read(zeros) + (1 << zeros) - 1


def _full_range(bits: _Bits) -> bool:
    """A sequence header's color_range (AV1 spec 5.5.1 and 5.5.2), the fields before it read
    and dropped."""
    profile = bits.read(3)
    bits.read(1)  # still_picture
    reduced = bool(bits.read(1))  # reduced_still_picture_header
    if reduced:
        bits.read(5)  # seq_level_idx[0]
    else:
        _operating_points(bits)
    width_bits, height_bits = bits.read(4) + 1, bits.read(4) + 1
    bits.read(width_bits + height_bits)  # max_frame_{width,height}_minus_1
    if not reduced and bits.read(1):  # frame_id_numbers_present_flag
        bits.read(4 + 3)
    bits.read(3)  # use_128x128_superblock, enable_filter_intra, enable_intra_edge_filter
    if not reduced:
        _inter_tools(bits)
    bits.read(3)  # enable_superres, enable_cdef, enable_restoration
    return _colour_range(bits, profile)


def _operating_points(bits: _Bits) -> None:
    decoder_model, delay_length = False, 0
    if bits.read(1):  # timing_info_present_flag
        bits.read(64)  # num_units_in_display_tick, time_scale
        if bits.read(1):  # equal_picture_interval
            bits.uvlc()
        decoder_model = bool(bits.read(1))
        if decoder_model:
            delay_length = bits.read(5) + 1
            bits.read(32 + 5 + 5)
    initial_delay = bool(bits.read(1))
    for _ in range(bits.read(5) + 1):
        bits.read(12)  # operating_point_idc
        if bits.read(5) > 7:  # seq_level_idx
            bits.read(1)  # seq_tier
        if decoder_model and bits.read(1):
            bits.read(2 * delay_length + 1)
        if initial_delay and bits.read(1):
            bits.read(4)


def _inter_tools(bits: _Bits) -> None:
    # interintra, masked compound, warped motion, dual filter, then enable_order_hint
    bits.read(4)
    order_hint = bool(bits.read(1))
    if order_hint:
        bits.read(2)  # enable_jnt_comp, enable_ref_frame_mvs
    screen_content = 2 if bits.read(1) else bits.read(1)  # seq_choose / seq_force
    if screen_content > 0 and not bits.read(1):  # seq_choose_integer_mv
        bits.read(1)  # seq_force_integer_mv
    if order_hint:
        bits.read(3)  # order_hint_bits_minus_1


def _colour_range(bits: _Bits, profile: int) -> bool:
    """color_config up to color_range (AV1 spec 5.5.2)."""
    high_bitdepth = bits.read(1)
    if profile == 2 and high_bitdepth:
        bits.read(1)  # twelve_bit
    mono = profile != 1 and bits.read(1)
    primaries = transfer = matrix = 2  # unspecified
    if bits.read(1):  # color_description_present_flag
        primaries, transfer, matrix = bits.read(8), bits.read(8), bits.read(8)
    if not mono and (primaries, transfer, matrix) == (1, 13, 0):
        return True  # sRGB coded as RGB: full range by definition
    return bool(bits.read(1))
