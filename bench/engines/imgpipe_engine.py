"""imgpipe's own render, as a rendering process runs it (render_unhashed): header checks, one
decode, the cascade, the encodes and the record's metadata (EXIF subset, phash, blurhash,
dominant colour). The original's sha256 is not here: the local store hashes an upload as it
writes it (its ETag), and the server hashes any other original while the rendering process
renders.

Two variants: "default" is imgpipe as it ships (its RenditionSpec defaults); "identical" sets
the encoder fields to exactly what every peer uses (WebP effort 4, JPEG Huffman optimisation,
4:2:0, baseline), for the side-by-side comparison at identical settings.
"""

from __future__ import annotations

from typing import Any

from engines.common import JPEG_QUALITY, SIZES, WEBP_QUALITY, Output

# The peers' settings, as RenditionSpec fields.
IDENTICAL: dict[str, Any] = {
    "webp_effort": 4,
    "webp_smart_subsample": False,
    "jpeg_optimize_coding": True,
    "jpeg_progressive": False,
    "jpeg_trellis": False,
    "jpeg_subsample": "on",
}


# The render's options, pickled: made by the bench's own process (options_env), as serve makes
# them, and unpickled by the engine's, as a rendering process does; so the engine's process
# holds what a rendering process holds: no settings, no pydantic.
OPTIONS_ENV = "BENCH_IMGPIPE_OPTIONS"


def options_env(variant: str) -> dict[str, str]:
    import base64
    import pickle

    from imgpipe.config import RenditionSpec, Settings

    overrides = IDENTICAL if variant == "identical" else {}
    specs = [
        RenditionSpec(
            name=name,
            width=box,
            height=box,
            quality={"jpeg": JPEG_QUALITY, "webp": WEBP_QUALITY},
            **overrides,
        )
        for name, box in SIZES
    ]
    options = Settings(renditions=specs).render_options()
    return {OPTIONS_ENV: base64.b64encode(pickle.dumps(options)).decode()}


def make() -> Any:
    import base64
    import os
    import pickle

    # What render() imports on first use, imported now: the worker's "RSS after imports"
    # then counts every module imgpipe needs, as it does for the other engines.
    from PIL import Image  # noqa: F401

    import imgpipe.engine.render_child  # noqa: F401  (what a rendering process imports)
    from imgpipe.engine import configure_vips, render_unhashed

    if OPTIONS_ENV not in os.environ:
        raise SystemExit(f"{OPTIONS_ENV} is not set: run this engine through bench/run.py")
    options = pickle.loads(base64.b64decode(os.environ[OPTIONS_ENV]))
    configure_vips()

    def run(data: bytes) -> list[Output]:
        result = render_unhashed(data, options)
        return [Output(r.name, r.format, r.width, r.height, r.data) for r in result.renditions]

    return run


def defaults_are_identical() -> bool:
    """True when imgpipe's RenditionSpec defaults are exactly the peers' settings."""
    from imgpipe.config import RenditionSpec

    spec = RenditionSpec(name="x", width=1, height=1).render_preset()
    auto_is_on = JPEG_QUALITY < 90  # libvips' "auto" is 4:2:0 below quality 90
    for name, value in IDENTICAL.items():
        current = getattr(spec, name, None)
        if name == "jpeg_subsample" and current == "auto" and auto_is_on:
            continue
        if current != value:
            return False
    return spec.quality_for("jpeg") == JPEG_QUALITY and spec.quality_for("webp") == WEBP_QUALITY
