"""inspection: probe (`imgpipe info`) gives the metadata a record would get, as a render would."""

from __future__ import annotations

import imagegen as gen
from engine_support import DEFAULTS, hamming
from imgpipe.engine import probe


def test_probe_reports_the_displayed_size() -> None:
    metadata = probe(gen.photo_jpeg(400, 300, orientation=6), DEFAULTS)
    assert (metadata.width, metadata.height, metadata.orientation) == (300, 400, 6)


def test_probe_and_render_agree(large_photo: bytes, large_result) -> None:
    probed = probe(large_photo, DEFAULTS)
    rendered = large_result.metadata
    assert probed.model_dump(exclude={"phash", "blurhash", "dominant_color"}) == (
        rendered.model_dump(exclude={"phash", "blurhash", "dominant_color"})
    )
    assert hamming(probed.phash, rendered.phash) <= 4  # type: ignore[arg-type]
