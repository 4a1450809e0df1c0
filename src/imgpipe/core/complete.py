"""Whether an encoded result is whole: its own structure ends at its last byte.

The derived cache's files are written without fsync (ObjectStore.put(durable=False)): on
ext4 and XFS, a file renamed into place before its data reached the disk comes back from a
power failure empty or cut short at the end, never with other bytes inside. Each output
format says where it ends, so a cut is found on read without a checksum stored beside it:

    JPEG   its segments lead to a scan, and the EOI marker is its last two bytes
    PNG    the IEND chunk is its last twelve
    WebP   the RIFF header's size counts every byte after the first eight
    AVIF   the top-level ISO-BMFF boxes' sizes add up to the file's, and they include the
           meta and mdat boxes (a cut between two boxes leaves one out)
"""

from __future__ import annotations

import struct

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_NEEDED_BOXES = frozenset({b"ftyp", b"meta", b"mdat"})
_MAX_BOXES = 4096  # an AVIF result has a handful; a loop over garbage stops here


def complete(data: bytes) -> bool:
    """True when `data` is a whole JPEG, PNG, WebP or AVIF file as imgpipe writes them."""
    if data.startswith(b"\xff\xd8\xff"):
        return data.endswith(b"\xff\xd9") and _segments_reach_a_scan(data)
    if data.startswith(_PNG_SIGNATURE):
        return data.endswith(_PNG_END)  # the two cannot overlap: 20 bytes at least
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        size: int = struct.unpack("<I", data[4:8])[0]
        return size + 8 == len(data)
    if data[4:8] == b"ftyp":
        return _boxes_fill(data)
    return False


def _segments_reach_a_scan(data: bytes) -> bool:
    """The marker segments after SOI, each by its length, reach a start of scan with room
    for its header and the EOI: a cut inside them (an EXIF thumbnail's own EOI, say) fails."""
    offset = 2
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            return False
        marker = data[offset + 1]
        if marker == 0xFF:  # a fill byte before a marker
            offset += 1
            continue
        length = int.from_bytes(data[offset + 2 : offset + 4], "big")
        if marker == 0xDA:
            return offset + 2 + length + 2 <= len(data)
        offset += 2 + length
    return False


def _boxes_fill(data: bytes) -> bool:
    """The top-level boxes, one after another, end exactly where `data` does, and the image's
    description (meta) and data (mdat) are among them."""
    offset = 0
    kinds: set[bytes] = set()
    for _ in range(_MAX_BOXES):
        if offset == len(data):
            return kinds >= _NEEDED_BOXES
        if offset + 8 > len(data):
            return False
        (size,) = struct.unpack(">I", data[offset : offset + 4])
        if size == 1:  # a 64-bit size follows the type
            if offset + 16 > len(data):
                return False
            (size,) = struct.unpack(">Q", data[offset + 8 : offset + 16])
        elif size == 0:  # to the end of the file: nothing can tell a cut
            return False
        if size < 8:
            return False
        kinds.add(data[offset + 4 : offset + 8])
        offset += size
    return False
