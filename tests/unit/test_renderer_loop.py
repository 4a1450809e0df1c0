"""A rendering process's loop (`renderers._serve`), run in a thread over a real pipe: it hands
memory back once it has been idle after a job, and never while jobs keep coming."""

from __future__ import annotations

import multiprocessing
import threading
import time
from multiprocessing.connection import Connection

from imgpipe.adapters import renderers
from imgpipe.config import Settings
from imgpipe.core.imaging import RenderOptions, RenderResult

OPTIONS = RenderOptions.from_settings(Settings())
IDLE_S = 0.1


def fake_render(data: bytes, options: RenderOptions) -> RenderResult:
    return RenderResult(facts={"bytes": len(data)}, renditions=())


def send_job(conn: Connection, data: bytes) -> None:
    conn.send(("render", OPTIONS))
    conn.send_bytes(data)


def reply(conn: Connection) -> RenderResult:
    kind, result = conn.recv()
    assert kind == "ok"
    return result  # type: ignore[no-any-return]


def test_memory_is_handed_back_once_per_idle_spell_after_a_job() -> None:
    parent, child = multiprocessing.Pipe()
    trims: list[float] = []
    trimmed = threading.Event()

    def on_idle() -> None:
        trims.append(time.monotonic())
        trimmed.set()

    loop = threading.Thread(target=renderers._serve, args=(child, fake_render, IDLE_S, on_idle))
    loop.start()
    try:
        time.sleep(IDLE_S * 3)
        assert trims == []  # idle before any job: nothing to hand back
        # Two jobs queued before either is answered: the second is waiting when the first
        # is done, so no trim comes between them, however the threads are scheduled
        send_job(parent, b"abc")
        send_job(parent, b"abcd")
        assert reply(parent).facts == {"bytes": 3}
        assert reply(parent).facts == {"bytes": 4}
        # then the idle spell: one trim, and no other however long it lasts
        assert trimmed.wait(10)
        time.sleep(IDLE_S * 3)
        assert len(trims) == 1
        trimmed.clear()
        send_job(parent, b"x")
        reply(parent)
        assert trimmed.wait(10)
        assert len(trims) == 2
    finally:
        parent.send(None)
        loop.join(5)
    assert not loop.is_alive()
