"""The /img route's derived cache over the real local wiring: a miss renders and stores, the
next request reads; identical requests at once render once; the size budget evicts the least
recently read; a delete, a new version and a reprocess remove an image's results; misses are
rate-limited per client. Renders are counted at the renderer, never timed."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from PIL import Image

import imagegen
from conftest import drain
from imgpipe.adapters.local.derived_cache import LocalDerivedCache
from imgpipe.adapters.local.fs_store import FilesystemObjectStore
from imgpipe.bootstrap import LocalApp, build_local
from imgpipe.config import Settings
from imgpipe.core.complete import complete
from imgpipe.core.files import OpenFile
from imgpipe.core.ports import NullMetrics
from imgpipe.core.transform import TransformRequest, Variant
from imgpipe.engine import InProcessRenderer
from imgpipe.entrypoints.local_server import create_local_app


class CountingRenderer(InProcessRenderer):
    """Renders in-process, counting transforms; `gate`, while clear, holds each one back."""

    def __init__(self) -> None:
        self.transforms = 0
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()

    def transform(self, original: bytes | OpenFile, request: TransformRequest) -> Variant:
        with self._lock:
            self.transforms += 1
        assert self.gate.wait(30), "the test never opened the gate"  # a hang guard only
        return super().transform(original, request)


@pytest.fixture
def renderer() -> CountingRenderer:
    return CountingRenderer()


def _app(settings: Settings, renderer: CountingRenderer, **transform: object) -> LocalApp:
    changed = settings.model_copy(
        update={"transform": settings.transform.model_copy(update=transform)}
    )
    return build_local(changed, renderer=renderer, with_workers=False)


@pytest.fixture
def app(settings: Settings, renderer: CountingRenderer) -> Iterator[LocalApp]:
    local = _app(settings, renderer, miss_rate_per_s=0.0)
    yield local
    local.stop()


@pytest.fixture
def client(app: LocalApp) -> Iterator[TestClient]:
    with TestClient(create_local_app(app)) as c:
        yield c


def upload(client: TestClient, app: LocalApp, data: bytes) -> tuple[str, str]:
    response = client.post("/images", files={"file": ("photo.jpg", data, "image/jpeg")})
    assert response.status_code == 202, response.text
    drain(app)
    return str(response.json()["imageId"]), str(response.json()["key"])


def derived_files(app: LocalApp) -> list[Path]:
    return sorted(p for p in (app.objects.root / "derived").rglob("*") if p.is_file())


def size_of(content: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(content)) as im:
        return im.size


def test_miss_then_hit(client: TestClient, app: LocalApp, renderer: CountingRenderer) -> None:
    image_id, _ = upload(client, app, imagegen.photo_jpeg(640, 480))
    path = f"/img/_/w:200/plain/{image_id}@webp"
    first = client.get(path)
    assert renderer.transforms == 1
    assert len(derived_files(app)) == 1
    second = client.get(path)
    # THEN the second is read from the cache: no render, the same bytes and ETag
    assert renderer.transforms == 1
    assert second.content == first.content
    assert second.headers["etag"] == first.headers["etag"]
    # Options that mean the same are the same entry; another size is another.
    client.get(f"/img/_/width:200/rt:fit/plain/{image_id}@webp")
    assert renderer.transforms == 1
    client.get(f"/img/_/w:201/plain/{image_id}@webp")
    assert renderer.transforms == 2


def test_ten_identical_requests_at_once_render_once(
    client: TestClient, app: LocalApp, renderer: CountingRenderer
) -> None:
    image_id, _ = upload(client, app, imagegen.photo_jpeg(640, 480))
    path = f"/img/_/rs:fill:120:90/plain/{image_id}@jpg"
    delivery = app.service.delivery
    renderer.gate.clear()  # the first render waits until all ten have asked
    asked = threading.Barrier(11)

    def request() -> bytes:
        found = delivery.find(path[len("/img") :], None)
        asked.wait(30)
        return delivery.render(found).body or b""

    with ThreadPoolExecutor(10) as pool:
        results = [pool.submit(request) for _ in range(10)]
        asked.wait(30)
        renderer.gate.set()
        bodies = [r.result(60) for r in results]
    assert renderer.transforms == 1
    assert len(set(bodies)) == 1 and size_of(bodies[0]) == (120, 90)
    assert len(derived_files(app)) == 1


def test_delete_removes_the_results(client: TestClient, app: LocalApp) -> None:
    image_id, _ = upload(client, app, imagegen.photo_jpeg(640, 480))
    other_id, _ = upload(client, app, imagegen.photo_jpeg(320, 240))
    client.get(f"/img/_/w:100/plain/{image_id}@jpg")
    client.get(f"/img/_/w:50/plain/{image_id}@webp")
    client.get(f"/img/_/w:100/plain/{other_id}@jpg")
    files = derived_files(app)
    assert len([p for p in files if p.name != "twin"]) == 3
    # w:50 of 640 px decodes at 1/8: that decode is kept as the image's twin, beside its results
    assert [p.parts[-3] for p in files if p.name == "twin"] == [image_id]
    assert client.delete(f"/images/{image_id}").status_code == 204
    remaining = derived_files(app)
    assert [p.relative_to(app.objects.root).parts[1] for p in remaining] == [other_id]
    assert client.get(f"/img/_/w:100/plain/{image_id}@jpg").status_code == 404


def test_a_new_version_is_rendered_from_and_the_old_results_removed(
    client: TestClient, app: LocalApp, renderer: CountingRenderer
) -> None:
    image_id, key = upload(client, app, imagegen.photo_jpeg(640, 480))
    path = f"/img/_/w:100/plain/{image_id}@jpg"
    old = client.get(path)
    assert size_of(old.content) == (100, 75)
    old_files = derived_files(app)
    # WHEN the original is replaced by a portrait photo and processed
    app.objects.put(key, imagegen.photo_jpeg(300, 600), "image/jpeg")
    assert client.post("/process-image", json={"key": key}).status_code == 200
    # THEN the old result is gone, and the URL gives the new image
    assert not any(p.exists() for p in old_files)
    new = client.get(path)
    assert size_of(new.content) == (100, 200)
    assert new.headers["etag"] != old.headers["etag"]
    assert renderer.transforms == 2


def test_reprocess_removes_the_results(
    client: TestClient, app: LocalApp, renderer: CountingRenderer
) -> None:
    image_id, _ = upload(client, app, imagegen.photo_jpeg(640, 480))
    path = f"/img/_/w:100/plain/{image_id}@jpg"
    client.get(path)
    old_files = derived_files(app)
    assert client.post(f"/images/{image_id}/reprocess").status_code == 202
    # While it waits in the queue, the results stand.
    client.get(path)
    assert renderer.transforms == 1
    drain(app)
    assert not any(p.exists() for p in old_files)
    assert client.get(path).status_code == 200
    assert renderer.transforms == 2


def _before_and_after(settings: Settings, **change: object) -> tuple[Response, Response]:
    """One URL's answer, then its answer from a server come back on the same data folder
    with the transform settings `change`d; each server rendered it once."""
    path = "/img/_/w:300/plain/{}@jpg"
    first = CountingRenderer()
    local = _app(settings, first, miss_rate_per_s=0.0)
    with TestClient(create_local_app(local)) as client:
        image_id, _ = upload(client, local, imagegen.photo_jpeg(640, 480))
        before = client.get(path.format(image_id))
        assert client.get(path.format(image_id)).content == before.content
    local.stop()
    assert first.transforms == 1
    second = CountingRenderer()
    local = _app(settings, second, miss_rate_per_s=0.0, **change)
    try:
        with TestClient(create_local_app(local)) as client:
            after = client.get(path.format(image_id))
    finally:
        local.stop()
    assert second.transforms == 1
    return before, after


def test_a_change_of_the_encoder_settings_renders_anew(settings: Settings) -> None:
    # WHEN the server comes back with a lower JPEG quality
    quality = {**settings.transform.quality, "jpeg": 40}
    before, after = _before_and_after(settings, quality=quality)
    # THEN the same URL was rendered again, at the new quality
    assert len(after.content) < len(before.content)
    assert after.headers["etag"] != before.headers["etag"]


def test_a_change_of_the_decode_scale_renders_anew(settings: Settings) -> None:
    # WHEN the server comes back decoding JPEGs at the scale that just covers the result
    before, after = _before_and_after(settings, fast_shrink_on_load=True)
    # THEN the same URL was rendered again, from a decode at half the size
    assert size_of(after.content) == size_of(before.content) == (300, 225)
    assert after.content != before.content
    assert after.headers["etag"] != before.headers["etag"]


def test_misses_are_rate_limited_per_client_and_hits_are_not(
    settings: Settings, renderer: CountingRenderer
) -> None:
    local = _app(settings, renderer, miss_rate_per_s=0.01, miss_burst=2)
    try:
        with TestClient(create_local_app(local)) as client:
            image_id, _ = upload(client, local, imagegen.photo_jpeg(320, 240))
            assert client.get(f"/img/_/w:10/plain/{image_id}@jpg").status_code == 200
            assert client.get(f"/img/_/w:11/plain/{image_id}@jpg").status_code == 200
            limited = client.get(f"/img/_/w:12/plain/{image_id}@jpg")
            assert limited.status_code == 429
            assert limited.json()["error"]["code"] == "rate_limited"
            assert int(limited.headers["retry-after"]) >= 1
            assert renderer.transforms == 2
            # A cached result is still served.
            assert client.get(f"/img/_/w:10/plain/{image_id}@jpg").status_code == 200
    finally:
        local.stop()


def test_a_304_counts_as_a_read_for_the_budget(client: TestClient, app: LocalApp) -> None:
    image_id, _ = upload(client, app, imagegen.photo_jpeg(640, 480))
    old = client.get(f"/img/_/w:200/plain/{image_id}@jpg")
    client.get(f"/img/_/w:201/plain/{image_id}@jpg")
    # GIVEN the older result revalidated by a client after the newer one was written
    again = client.get(
        f"/img/_/w:200/plain/{image_id}@jpg", headers={"if-none-match": old.headers["etag"]}
    )
    assert again.status_code == 304
    # WHEN a third result takes the cache over a budget that holds two
    app.derived.budget_bytes = int(len(old.content) * 2.5)
    client.get(f"/img/_/w:202/plain/{image_id}@jpg")
    # THEN the one revalidated is kept and the one not read since is gone
    kept = {size_of(p.read_bytes())[0] for p in derived_files(app)}
    assert 200 in kept and 201 not in kept


def test_eviction_keeps_the_budget_least_recently_read_first(tmp_path: Path) -> None:
    objects = FilesystemObjectStore(tmp_path / "data")
    cache = LocalDerivedCache(objects, budget_bytes=10_000, metrics=NullMetrics())
    keys = [f"derived/img{i}/v/{i}.jpg" for i in range(4)]
    for key in keys[:3]:
        objects.put(key, b"x" * 3_000, "image/jpeg")
        cache.stored(key, 3_000)
    # GIVEN the first is read again after the others were written
    cache.read(keys[0])
    # WHEN a fourth goes over the budget of 10,000 bytes
    objects.put(keys[3], b"x" * 3_000, "image/jpeg")
    cache.stored(keys[3], 3_000)
    # THEN the least recently read go until it holds at most 90% of the budget
    present = [key for key in keys if objects.head(key) is not None]
    assert present == [keys[0], keys[3]] or present == [keys[0], keys[2], keys[3]]
    assert cache.total_bytes() <= 9_000
    assert objects.head(keys[1]) is None


def test_budget_through_the_route(client: TestClient, app: LocalApp) -> None:
    image_id, _ = upload(client, app, imagegen.photo_jpeg(640, 480))
    first = client.get(f"/img/_/w:300/plain/{image_id}@jpg")
    app.derived.budget_bytes = int(len(first.content) * 2.5)
    for width in (301, 302, 303, 304):
        assert client.get(f"/img/_/w:{width}/plain/{image_id}@jpg").status_code == 200
    assert sum(p.stat().st_size for p in derived_files(app)) <= app.derived.budget_bytes
    assert len(derived_files(app)) >= 1


def test_a_read_reaches_its_file_with_the_time_of_the_read(tmp_path: Path) -> None:
    objects = FilesystemObjectStore(tmp_path / "data")
    cache = LocalDerivedCache(objects, budget_bytes=10_000, metrics=NullMetrics())
    keys = ["derived/img0/v/0.jpg", "derived/img1/v/1.jpg"]
    for key in keys:
        objects.put(key, b"x" * 100, "image/jpeg")
        cache.stored(key, 100)
        os.utime(
            objects.path_for(key), ns=(1_000_000_000, objects.path_for(key).stat().st_mtime_ns)
        )
    before = time.time_ns()
    cache.read(keys[0])
    after = time.time_ns()
    time.sleep(0.05)
    # WHEN the reads noted are flushed (as before a scan, every 30 s, and at the server's stop)
    cache.flush()
    # THEN the read file has the time of its read (not of the flush); the other is as it was
    read_at = objects.path_for(keys[0]).stat().st_atime_ns
    assert before <= read_at <= after
    assert objects.path_for(keys[1]).stat().st_atime_ns == 1_000_000_000


def test_a_local_apps_stop_writes_the_reads_it_noted(client: TestClient, app: LocalApp) -> None:
    image_id, _ = upload(client, app, imagegen.photo_jpeg(640, 480))
    path = f"/img/_/w:200/plain/{image_id}@jpg"
    client.get(path)
    (stored,) = derived_files(app)
    os.utime(stored, ns=(1_000_000_000, stored.stat().st_mtime_ns))
    client.get(path)  # a hit from memory: noted, not yet written
    app.stop()
    assert stored.stat().st_atime_ns > 1_000_000_000


@pytest.mark.parametrize("ext", ["jpg", "png", "webp", "avif"])
@pytest.mark.parametrize("kept", [0.0, 0.5])
def test_a_result_cut_short_on_disk_is_rendered_again_not_served(
    client: TestClient, app: LocalApp, renderer: CountingRenderer, ext: str, kept: float
) -> None:
    """Results are written without fsync: a power failure may leave one empty or cut short
    at the end (what ext4 and XFS give back). It is never served: it is rendered again, and
    the new result takes its place."""
    image_id, _ = upload(client, app, imagegen.photo_jpeg(640, 480))
    first = client.get(f"/img/_/w:200/plain/{image_id}@{ext}")
    [file] = derived_files(app)
    whole = file.read_bytes()
    assert whole == first.content
    file.write_bytes(whole[: int(len(whole) * kept)])
    # The same entry under options written otherwise: not the answer remembered in memory.
    again = client.get(f"/img/_/width:200/rt:fit/plain/{image_id}@{ext}")
    assert again.status_code == 200
    assert renderer.transforms == 2
    assert complete(again.content) and size_of(again.content) == size_of(first.content)
    assert file.read_bytes() == again.content
    assert again.headers["etag"] == '"' + hashlib.sha256(again.content).hexdigest() + '"'


def test_results_are_written_without_fsync_and_renditions_with(
    client: TestClient, app: LocalApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The derived cache's writes skip fsync (the test above is why that is safe); an upload's
    renditions, which nothing makes again by itself, do not."""
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    image_id, _ = upload(client, app, imagegen.photo_jpeg(640, 480))
    assert synced  # the original and its renditions
    synced.clear()
    assert client.get(f"/img/_/w:200/plain/{image_id}@webp").status_code == 200
    assert len(derived_files(app)) == 1
    assert synced == []


def test_an_original_gone_or_over_a_lowered_limit_is_refused_not_rendered(
    settings: Settings, renderer: CountingRenderer
) -> None:
    """The render opens the original without asking for its size first: an original removed
    behind the server's back is a 404; one over a limit lowered since its upload (the server
    restarted with it) a 422 too_large, as an image that cannot be rendered."""
    local = _app(settings, renderer, miss_rate_per_s=0.0)
    with TestClient(create_local_app(local)) as client:
        gone_id, gone_key = upload(client, local, imagegen.photo_jpeg(640, 480))
        big_id, _ = upload(client, local, imagegen.photo_jpeg(640, 480))
        local.objects.path_for(gone_key).unlink()
        answer = client.get(f"/img/_/w:100/plain/{gone_id}@jpg")
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
    local.stop()
    lowered = settings.model_copy(
        update={"limits": settings.limits.model_copy(update={"max_bytes": 100})}
    )
    local = _app(lowered, renderer, miss_rate_per_s=0.0)
    with TestClient(create_local_app(local)) as client:
        answer = client.get(f"/img/_/w:100/plain/{big_id}@jpg")
        assert answer.status_code == 422 and answer.json()["error"]["code"] == "too_large"
    local.stop()
    assert renderer.transforms == 0
