"""AVIF planes libheif leaves in limited range: which they are, read from the AV1 sequence
headers in the file's `av1C` boxes (or its `colr` boxes), and the expansion to full range.

libheif (in libvips 8.18.7) converts a limited-range YCbCr image to full-range RGB, but hands
on a monochrome image's grey and an alpha plane as they are coded: 16-235 where 0-255 is
meant (link-u's `*.monochrome.avif` and `*alpha-limited*` samples). The range is the
`color_range` bit of each AV1 item's sequence header in its `av1C` box, or where that box has
none, the full_range_flag of the item's `colr` box of type nclx; the alpha item is the one
whose `auxC` names alpha. Anything this reader cannot follow leaves the image as libvips
decoded it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

from imgpipe.engine.vips import VipsImage

_ALPHA_URNS = (b"urn:mpeg:mpegB:cicp:systems:auxiliary:alpha", b"urn:mpeg:hevc:2015:auxid:1")
_SEQUENCE_HEADER_OBU = 1


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
    properties = [(kind, data[a:b]) for kind, a, b in _boxes(data, *ipco)]
    owners = _associations(data, *iprp)
    grey = alpha = False
    for item, indexes in owners.items():
        known = [properties[i - 1] for i in indexes if 0 < i <= len(properties)]
        kinds = dict(known)
        av1c = kinds.get(b"av1C")
        if av1c is None:
            continue
        mono, coded_range = _colour_config(av1c)
        full_range = coded_range if coded_range is not None else _nclx_range(known)
        is_alpha = any(urn in kinds.get(b"auxC", b"") for urn in _ALPHA_URNS)
        if is_alpha:
            alpha = alpha or not full_range
        elif item == primary:
            grey = mono and not full_range
    return Limited(grey=grey, alpha=alpha)


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, end) of each box between `start` and `end`."""
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
    for found, a, b in _boxes(data, start, end):
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
    for kind, a, _ in _boxes(data, start, end):
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


def _nclx_range(properties: list[tuple[bytes, bytes]]) -> bool:
    """Full range by the item's `colr` box of type nclx (its full_range_flag), where av1C
    carries no sequence header (libavif 0.11's avifenc writes none); without one the range is
    unknown and taken as full (the image is left as decoded)."""
    for kind, payload in properties:
        if kind == b"colr" and payload[:4] == b"nclx":
            return bool(payload[10] & 0x80)  # after the primaries, transfer and matrix
    return True


def _colour_config(av1c: bytes) -> tuple[bool, bool | None]:
    """(monochrome, full range) from an av1C payload: its sequence header OBU says the range;
    without one the range is not known here (None)."""
    mono = bool(av1c[2] & 0x10)
    at = 4
    while at < len(av1c):
        header = av1c[at]
        kind, extension, has_size = (header >> 3) & 0xF, header & 4, header & 2
        at += 2 if extension else 1
        size, at = _leb128(av1c, at) if has_size else (len(av1c) - at, at)
        if kind == _SEQUENCE_HEADER_OBU:
            return mono, _full_range(_Bits(av1c[at : at + size]))
        at += size
    return mono, None


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
