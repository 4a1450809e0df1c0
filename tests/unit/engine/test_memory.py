"""Memory: glibc's malloc_trim is there, and a render calls it only before a decode that sets
the process's peak."""

from __future__ import annotations

import pytest

import imagegen as gen
from engine_support import DEFAULTS
from imgpipe.engine import memory, pipeline, render


def test_free_memory_is_handed_back_before_a_progressive_jpeg_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # libjpeg holds a progressive JPEG's every coefficient: that decode sets a process's peak,
    # so what glibc kept from earlier images goes back first; no other decode pays for it.
    calls: list[str] = []
    monkeypatch.setattr(pipeline, "hand_back_free_memory", lambda: calls.append("trim"))
    render(gen.photo_jpeg(64, 48), DEFAULTS)
    render(gen.rgba_png(64, 48), DEFAULTS)
    assert calls == []
    result = render(gen.progressive_jpeg(64, 48), DEFAULTS)
    assert calls == ["trim"] and len(result.renditions) == 6


def test_glibc_malloc_trim_is_found() -> None:
    # Debian, CI and Lambda's runtime are glibc: the call is there and answers 0 or 1
    trim = memory.malloc_trim()
    assert trim is not None
    assert trim(0) in (0, 1)
