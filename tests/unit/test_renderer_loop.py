"""A rendering process's loop (`renderers._serve`), run in a thread over a real pipe: it hands
memory back once it has been idle after a job, and never while jobs keep coming."""

from __future__ import annotations

import multiprocessing
import threading
import time

from imgpipe.adapters import renderers
from imgpipe.config import Settings
from imgpipe.core.imaging import RenderOptions, RenderResult

OPTIONS = RenderOptions.from_settings(Settings())
IDLE_S = 0.1


def fake_render(data: bytes, options: RenderOptions) -> RenderResult:
    return RenderResult(facts={"bytes": len(data)}, renditions=())


def test_memory_is_handed_back_once_per_idle_spell_after_a_job() -> None:
    parent, child = multiprocessing.Pipe()
    trims: list[float] = []
    loop = threading.Thread(
        target=renderers._serve,
        args=(child, fake_render, IDLE_S, lambda: trims.append(time.monotonic())),
    )
    loop.start()

    def job(data: bytes) -> RenderResult:
        parent.send(("render", OPTIONS))
        parent.send_bytes(data)
        kind, result = parent.recv()
        assert kind == "ok"
        return result  # type: ignore[no-any-return]

    try:
        time.sleep(IDLE_S * 3)
        assert trims == []  # idle before any job: nothing to hand back
        assert job(b"abc").facts == {"bytes": 3}
        assert job(b"abcd").facts == {"bytes": 4}  # back to back: no trim between
        assert trims == []
        time.sleep(IDLE_S * 5)
        assert len(trims) == 1  # one idle spell, one trim, however long it lasts
        job(b"x")
        time.sleep(IDLE_S * 5)
        assert len(trims) == 2
    finally:
        parent.send(None)
        loop.join(5)
    assert not loop.is_alive()
