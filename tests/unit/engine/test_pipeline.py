"""The render end to end, judged by what a user sees: outputs decoded with Pillow (an
independent decoder), their sizes and formats; every failure an ImgpipeError; what importing
and running the engine loads."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import imagegen as gen
from engine_support import DEFAULTS, PIL_FORMAT, decoded
from imgpipe.core.errors import ProcessingError, TooManyPixelsError
from imgpipe.core.rendering import RenderResult
from imgpipe.engine import pipeline, render


def test_default_renditions_of_a_large_photo(large_result: RenderResult) -> None:
    # GIVEN a 2000x1500 photo WHEN rendered with the defaults
    # THEN thumb, medium and large come out at long edge 256, 800, 1600, as JPEG and WebP
    got = {(r.name, r.format): r for r in large_result.renditions}
    assert set(got) == {(n, f) for n in ("thumb", "medium", "large") for f in ("jpeg", "webp")}
    expected = {"thumb": (256, 192), "medium": (800, 600), "large": (1600, 1200)}
    for (name, fmt), rendition in got.items():
        image = decoded(rendition)
        assert image.format == PIL_FORMAT[fmt]
        assert image.size == expected[name] == (rendition.width, rendition.height)
        assert image.mode == "RGB"
        assert rendition.ext == {"jpeg": "jpg", "webp": "webp"}[fmt]


def test_outputs_look_like_the_source(large_photo: bytes, large_result) -> None:
    source = Image.open(io.BytesIO(large_photo)).convert("RGB").resize((256, 192))
    thumb = next(r for r in large_result.renditions if (r.name, r.format) == ("thumb", "jpeg"))
    diff = np.abs(np.asarray(source, float) - np.asarray(decoded(thumb), float))
    assert diff.mean() < 8


def test_unexpected_failures_become_processing_errors(monkeypatch) -> None:
    def explode(*_args: object) -> None:
        raise RuntimeError("boom\n" + "x" * 5000)

    monkeypatch.setattr(pipeline, "decode", explode)
    with pytest.raises(ProcessingError) as raised:
        render(gen.photo_jpeg(16, 16), DEFAULTS)
    assert len(str(raised.value)) < 300


def test_memory_errors_become_too_many_pixels(monkeypatch) -> None:
    def exhaust(*_args: object) -> None:
        raise MemoryError

    monkeypatch.setattr(pipeline, "decode", exhaust)
    with pytest.raises(TooManyPixelsError):
        render(gen.photo_jpeg(16, 16), DEFAULTS)


def test_a_render_loads_no_numpy() -> None:
    """numpy is a test and bench dependency only: the analysis (pHash, blurhash, dominant
    colour, alpha flattening) is pure Python, so rendering processes and the Lambda zip are
    without it."""
    code = (
        "import io, sys; from PIL import Image;"
        "from imgpipe.config import Settings; from imgpipe import engine;"
        "opts = Settings().render_options();"
        "out = io.BytesIO(); Image.new('RGBA', (64, 48), (9, 99, 199, 120)).save(out, 'PNG');"
        "result = engine.render(out.getvalue(), opts);"
        "print(len(result.renditions), result.metadata.phash is not None, 'numpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["6", "True", "False"]


def test_importing_the_engine_loads_no_image_library() -> None:
    code = (
        "import sys, imgpipe.engine.pipeline, imgpipe.engine.inspection, imgpipe.engine.renderers;"
        "print(sorted({'pyvips', 'numpy', 'PIL', 'pillow_heif'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=None
    )
    assert out.stdout.strip() == "[]"
