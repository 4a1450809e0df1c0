"""engine/avif_range.py on still AVIFs built here (tests/avif_still.py), whose av1C boxes carry
no sequence header and which have no colr box: the range is in the item's AV1 data alone.
The sequence headers are written bit by bit from the AV1 specification (5.5: a reduced still
picture header), not by the reader under test. Real encoders' files are in
tests/integration/test_fidelity_fixes.py."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from avif_still import Track, still
from imgpipe.engine.avif_range import Limited, limited_planes

MONOCHROME_AV1C = bytes([0x81, 0x00, 0x1C, 0x00])  # profile 0, 8-bit, mono, 4:2:0; no OBUs
_FRAME_OBU = 6
_METADATA_OBU, _PADDING_OBU = 5, 15


def obu(kind: int, payload: bytes) -> bytes:
    """An OBU with obu_has_size_field set and its size in one leb128 byte."""
    assert len(payload) < 128
    return bytes([kind << 3 | 2, len(payload)]) + payload


def sequence_header(*, mono: bool, full_range: bool) -> bytes:
    """A reduced still picture sequence header of a 1x1 8-bit image, profile 0."""
    bits = "000 1 1 00000"  # seq_profile, still_picture, reduced header, seq_level_idx
    bits += "0000 0000 0 0"  # width and height: 1 bit each, max_frame_* minus 1 = 0
    bits += "000 000"  # 128x128, filter intra, intra edge; superres, cdef, restoration
    bits += "0" + ("1" if mono else "0")  # high_bitdepth, mono_chrome
    bits += "0" + ("1" if full_range else "0")  # no colour description, color_range
    bits += "0"  # film_grain_params_present
    bits = bits.replace(" ", "")
    bits += "1" + "0" * (-(len(bits) + 1) % 8)  # trailing bits
    return obu(1, int(bits, 2).to_bytes(len(bits) // 8, "big"))


def grey_avif(sample: bytes) -> bytes:
    """A still monochrome AVIF of one item whose AV1 data is `sample`."""
    return still([Track(b"pict", 1, 1, MONOCHROME_AV1C, sample)])


@given(
    full_range=st.booleans(),
    before=st.lists(st.sampled_from([_METADATA_OBU, _PADDING_OBU]), max_size=3),
    payload=st.binary(max_size=20),
)
def test_the_range_is_read_from_the_items_own_sequence_header(
    full_range: bool, before: list[int], payload: bytes
) -> None:
    # GIVEN a monochrome item whose range is in its AV1 data alone, after any metadata or
    # padding OBUs and before its frame
    sample = b"".join(obu(kind, payload) for kind in before)
    sample += sequence_header(mono=True, full_range=full_range) + obu(_FRAME_OBU, bytes(8))
    # WHEN its range is read THEN it is the sequence header's
    assert limited_planes(grey_avif(sample)) == Limited(grey=not full_range, alpha=False)


def test_a_sequence_header_after_the_frame_or_out_of_the_item_is_not_read() -> None:
    # GIVEN limited-range sequence headers where the item's sequence header cannot be: after
    # its frame, or in the file but outside the item's extent
    header = sequence_header(mono=True, full_range=False)
    late = grey_avif(obu(_FRAME_OBU, bytes(8)) + header)
    outside = grey_avif(obu(_FRAME_OBU, bytes(8))) + header
    # WHEN their range is read THEN it is unknown, taken as full; in its place it is read
    assert limited_planes(late) == Limited(grey=False, alpha=False)
    assert limited_planes(outside) == Limited(grey=False, alpha=False)
    assert limited_planes(grey_avif(header)) == Limited(grey=True, alpha=False)


def iloc_at(data: bytes) -> int:
    """Where the iloc box's payload starts (after its size and type)."""
    return data.index(b"iloc") + 4


@given(garbage=st.binary(max_size=64), at=st.integers(min_value=0, max_value=40))
def test_garbage_in_the_item_or_its_location_never_raises(garbage: bytes, at: int) -> None:
    # GIVEN a limited-range monochrome item whose location in iloc, or whose AV1 data, is
    # overwritten with garbage from `at` (a hostile file)
    sample = sequence_header(mono=True, full_range=False) + obu(_FRAME_OBU, bytes(8))
    data = grey_avif(sample)
    for start in (iloc_at(data) + at, len(data) - len(sample) + at % len(sample)):
        spoiled = data[:start] + garbage + data[start + len(garbage) :]
        # WHEN its range is read THEN the reader does not raise: read, or taken as full
        assert limited_planes(spoiled) in {Limited(False, False), Limited(True, False)}


def test_an_item_stored_elsewhere_is_taken_as_full_range() -> None:
    # GIVEN the limited-range item, its iloc entry marked as in another file (data reference
    # 1) or with an extent past the end of the file (a cut upload)
    sample = sequence_header(mono=True, full_range=False) + obu(_FRAME_OBU, bytes(8))
    data = grey_avif(sample)
    entry = iloc_at(data) + 8  # version and flags, sizes, item_count
    item, reference = struct.unpack_from(">HH", data, entry)
    assert (item, reference) == (1, 0)
    elsewhere = data[: entry + 2] + struct.pack(">H", 1) + data[entry + 4 :]
    # WHEN their range is read THEN it is taken as full (the image left as decoded)
    assert limited_planes(elsewhere) == Limited(grey=False, alpha=False)
    assert limited_planes(data[:-1]) == Limited(grey=False, alpha=False)
    assert limited_planes(data) == Limited(grey=True, alpha=False)
