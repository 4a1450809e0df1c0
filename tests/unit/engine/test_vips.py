"""libvips' set-up: only the allow-listed loaders can read anything."""

from __future__ import annotations

import pytest

import imagegen as gen
from imgpipe.engine import configure_vips


def test_untrusted_loaders_are_blocked() -> None:
    import pyvips

    configure_vips()
    configure_vips()  # idempotent
    for data in (gen.SVG, b"2 2\n1 2\n3 4\n", b"1,2,3\n4,5,6\n"):
        with pytest.raises(pyvips.Error):
            pyvips.Image.new_from_buffer(data, "")
        with pytest.raises(pyvips.Error):
            pyvips.Image.new_from_source(pyvips.Source.new_from_memory(data), "")
    with pytest.raises(pyvips.Error):
        pyvips.Operation.call("svgload_buffer", gen.SVG)
    for data in (gen.photo_jpeg(8, 8), gen.rgba_png(8, 8), gen.webp(8, 8), gen.animated_gif(8, 8)):
        assert pyvips.Image.new_from_buffer(data, "").avg() >= 0
    assert pyvips.Image.new_from_buffer(gen.tiff(8, 8), "").width == 8
    assert pyvips.Image.new_from_buffer(gen.avif(8, 8), "").avg() >= 0
