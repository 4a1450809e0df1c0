"""One render's encodes on two cores: a helper thread takes encodes while a core is idle.

The machine's load is replaced here (`runnable_threads`), so that each test decides whether a
core is idle; the encodes themselves are real.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import imagegen as gen
from imgpipe.config import Settings
from imgpipe.core.errors import ProcessingError
from imgpipe.core.rendering import RenderResult
from imgpipe.engine import encode, render

DEFAULTS = Settings().render_options()


@pytest.fixture(scope="module")
def photo() -> bytes:
    return gen.photo_jpeg(2000, 1500)


def _blobs(result: RenderResult) -> dict[tuple[str, str], bytes]:
    return {(r.name, r.format): r.data for r in result.renditions}


@pytest.fixture(scope="module")
def one_thread(photo: bytes) -> dict[tuple[str, str], bytes]:
    """The photo's outputs with every encode in the render's own thread."""
    encode.ENCODE_HELPER = False
    try:
        return _blobs(render(photo, DEFAULTS))
    finally:
        encode.ENCODE_HELPER = True


def _watch_encodes(monkeypatch: pytest.MonkeyPatch, hold_largest_webp_s: float = 0.0) -> list[Any]:
    """Record (thread name, rendition, format) for each encode; optionally hold the longest
    one (the 1600 px WebP), so that the helper has time to take others."""
    seen: list[Any] = []
    real = encode.write

    def write(image: Any, fmt: str, spec: Any, *rest: Any) -> bytes:
        seen.append((threading.current_thread().name, spec.name, fmt))
        if (spec.name, fmt) == ("large", "webp") and hold_largest_webp_s:
            time.sleep(hold_largest_webp_s)
        return real(image, fmt, spec, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(encode, "write", write)
    monkeypatch.setattr(encode, "usable_cores", lambda: 2)
    return seen


def test_encodes_running_at_once_write_the_same_bytes_as_one_after_another(
    monkeypatch: pytest.MonkeyPatch, photo: bytes, one_thread: dict[tuple[str, str], bytes]
) -> None:
    # GIVEN a core always idle, nothing held: the two threads' JPEG and WebP encodes of one
    # size overlap (Pillow's Image.save keeps its options on the image object, which made the
    # JPEG come out at the WebP's quality while both threads shared one)
    monkeypatch.setattr(encode, "runnable_threads", lambda: 1)
    monkeypatch.setattr(encode, "usable_cores", lambda: 2)
    # WHEN the photo renders a few times THEN every output is the one-thread output
    for _ in range(3):
        assert _blobs(render(photo, DEFAULTS)) == one_thread


def test_with_an_idle_core_the_helper_encodes_and_the_bytes_do_not_change(
    monkeypatch: pytest.MonkeyPatch, photo: bytes, one_thread: dict[tuple[str, str], bytes]
) -> None:
    # GIVEN a core always idle, and the render's thread held a moment on the largest WebP, so
    # that the helper surely takes some encodes
    monkeypatch.setattr(encode, "runnable_threads", lambda: 1)
    seen = _watch_encodes(monkeypatch, hold_largest_webp_s=0.2)
    # WHEN the photo renders
    helped = _blobs(render(photo, DEFAULTS))
    # THEN the outputs are byte for byte the same, the longest encode (the largest WebP) ran
    # in the render's own thread, and the helper thread wrote others
    assert helped == one_thread
    assert (threading.current_thread().name, "large", "webp") in seen
    helper_did = [(name, fmt) for thread, name, fmt in seen if thread.startswith("imgpipe-encode")]
    assert helper_did, seen
    assert len(seen) == 6


def test_with_every_core_busy_all_encodes_stay_in_the_render_thread(
    monkeypatch: pytest.MonkeyPatch, photo: bytes
) -> None:
    # GIVEN a machine with more runnable threads than cores
    looks: list[int] = []

    def busy() -> int:
        looks.append(1)
        return 99

    monkeypatch.setattr(encode, "runnable_threads", busy)
    seen = _watch_encodes(monkeypatch, hold_largest_webp_s=0.2)
    # WHEN a photo renders
    result = render(photo, DEFAULTS)
    # THEN every encode ran in the caller's thread; the helper (given 0.2 s to start) only
    # looked for a free core
    assert {thread for thread, _, _ in seen} == {threading.current_thread().name}
    assert len(result.renditions) == 6
    assert looks


def test_an_encode_that_fails_in_the_helper_fails_the_render(
    monkeypatch: pytest.MonkeyPatch, photo: bytes
) -> None:
    # GIVEN an idle core, and an encoder that fails on the 256 px JPEG, which the helper
    # takes while the render's thread is held on the 1600 px WebP
    monkeypatch.setattr(encode, "runnable_threads", lambda: 1)
    seen = _watch_encodes(monkeypatch, hold_largest_webp_s=0.2)
    watched = encode.write

    def write(image: Any, fmt: str, spec: Any, *rest: Any) -> bytes:
        if spec.name == "thumb" and fmt == "jpeg":
            seen.append((threading.current_thread().name, "failed", fmt))
            raise ProcessingError("the thumb JPEG could not be written")
        return watched(image, fmt, spec, *rest)  # type: ignore[no-any-return]

    monkeypatch.setattr(encode, "write", write)
    # WHEN it renders THEN the render fails with that error, raised in the helper thread
    with pytest.raises(ProcessingError, match="thumb JPEG"):
        render(photo, DEFAULTS)
    failed_in = [thread for thread, name, _ in seen if name == "failed"]
    assert failed_in and failed_in[0].startswith("imgpipe-encode")


def test_a_render_does_not_wait_for_a_helper_that_never_got_a_thread(
    monkeypatch: pytest.MonkeyPatch, photo: bytes, one_thread: dict[tuple[str, str], bytes]
) -> None:
    # GIVEN an idle core, but every helper thread of the process held by other work (more
    # renders at once than cores, as a threads pool with more workers than cores has)
    monkeypatch.setattr(encode, "runnable_threads", lambda: 1)
    seen = _watch_encodes(monkeypatch)
    pool = encode.helper_pool()
    release = threading.Event()
    holders = [pool.submit(release.wait, 60) for _ in range(pool._max_workers)]
    try:
        # WHEN a photo renders (in a thread of its own, so that a wait cannot hang the test)
        done: dict[str, Any] = {}
        thread = threading.Thread(target=lambda: done.update(result=render(photo, DEFAULTS)))
        thread.start()
        thread.join(30)
        # THEN it finished while the pool was still held: every encode in its own thread,
        # the same bytes
        assert "result" in done, "the render waited for its queued helper"
        assert {name for name, _, _ in seen} == {thread.name}
        assert _blobs(done["result"]) == one_thread
    finally:
        release.set()
        for holder in holders:
            holder.result()


def test_a_single_encode_never_starts_the_helper(
    monkeypatch: pytest.MonkeyPatch, photo: bytes
) -> None:
    # GIVEN an idle core and a preset with one rendition in one format
    monkeypatch.setattr(encode, "runnable_threads", lambda: 1)
    seen = _watch_encodes(monkeypatch)
    only = DEFAULTS.renditions[0]._replace(formats=("webp",))
    options = DEFAULTS._replace(renditions=(only,))
    # WHEN it renders THEN its one encode ran in the caller's thread
    render(photo, options)
    assert seen == [(threading.current_thread().name, only.name, "webp")]
