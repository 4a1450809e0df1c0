"""Versioned renditions over in-memory fakes: only stale presets are rendered again."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from PIL import Image

import imagegen
from conftest import Wired, drain, wire
from fakes import InMemoryJobQueue, InMemoryMetadataStore, InMemoryObjectStore
from imgpipe.config import RenditionSpec, Settings
from imgpipe.core.errors import ImageBusyError, WorkerCrashedError
from imgpipe.core.jobs import Rerender, event_from_info
from imgpipe.core.model import ImageRecord, Status, iso, utcnow
from imgpipe.core.rendering import RenderOptions, RenderResult
from imgpipe.engine import InProcessRenderer
from imgpipe.entrypoints.lambda_worker import jobs_from
from imgpipe.service import Renderer

THUMB = RenditionSpec(name="thumb", width=256, height=256)
MEDIUM = RenditionSpec(name="medium", width=800, height=800)
LARGE = RenditionSpec(name="large", width=1600, height=1600)
KEY = "uploads/r/photo.jpg"


class Stores:
    """One set of stores that services with different settings (workers) share."""

    def __init__(self) -> None:
        self.objects = InMemoryObjectStore()
        self.records = InMemoryMetadataStore()
        self.queue = InMemoryJobQueue()

    def service(self, *specs: RenditionSpec, renderer: Renderer | None = None) -> Wired:
        """A worker whose settings have `specs`, over these stores."""
        settings = Settings(renditions=list(specs), server={"watch_uploads": False})
        return self.worker(settings, renderer or CountingRenderer())

    def worker(self, settings: Settings, renderer: Renderer) -> Wired:
        return wire(
            settings,
            objects=self.objects,
            records=self.records,
            queue=self.queue,
            renderer=renderer,
        )

    def versions(self, record: ImageRecord) -> dict[str, str | None]:
        """Each rendition key's object version: a key that was written again has a new one."""
        found = {r.key: self.objects.head(r.key) for r in record.renditions}
        return {key: info.version_id if info else None for key, info in found.items()}


class CountingRenderer:
    """Renders for real, and remembers which presets each call asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def render(self, data: bytes, options: RenderOptions) -> RenderResult:
        self.calls.append(tuple(s.name for s in options.renditions))
        return InProcessRenderer().render(data, options)


@pytest.fixture
def stores() -> Stores:
    return Stores()


@pytest.fixture
def processed(stores: Stores) -> ImageRecord:
    """A photo processed with thumb, medium and large."""
    info = stores.objects.put(KEY, imagegen.photo_jpeg(1200, 900), "image/jpeg")
    record = stores.service(THUMB, MEDIUM, LARGE).service.processing.process(event_from_info(info))
    assert record is not None and record.status is Status.PROCESSED
    return record


def test_a_processed_record_carries_its_hashes(stores: Stores, processed: ImageRecord) -> None:
    settings = Settings(renditions=[THUMB, MEDIUM, LARGE])
    assert processed.rendition_hash == settings.rendition_hash()
    hashes = settings.spec_hashes()
    assert {(r.name, r.spec_hash) for r in processed.renditions} == set(hashes.items())
    assert processed.public()["renditionHash"] == settings.rendition_hash()
    assert all("specHash" in r for r in processed.public()["renditions"])


def test_an_added_preset_renders_just_that_preset(stores: Stores, processed: ImageRecord) -> None:
    # GIVEN a worker whose settings add an "xl" preset
    xl = RenditionSpec(name="xl", width=1000, height=1000, formats=["webp"])
    renderer = CountingRenderer()
    worker = stores.service(THUMB, MEDIUM, LARGE, xl, renderer=renderer).service.rerendering
    before = stores.versions(processed)
    assert worker.is_stale(processed)

    # WHEN the re-render job runs
    done = worker.rerender(KEY)

    # THEN one render asked for "xl" only; the other renditions were not written again
    assert renderer.calls == [("xl",)]
    assert done is not None and done.status is Status.PROCESSED
    assert done.rendition_hash == worker.rendition_hash and not worker.is_stale(done)
    assert {k: v for k, v in stores.versions(done).items() if k in before} == before
    [new] = [r for r in done.renditions if r.name == "xl"]
    with Image.open(io.BytesIO(stores.objects.get(new.key))) as im:
        assert im.format == "WEBP" and im.size == (1000, 750) == (new.width, new.height)
    assert [r.name for r in done.renditions] == ["thumb"] * 2 + ["medium"] * 2 + ["large"] * 2 + [
        "xl"
    ]
    # AND the record's image data did not change
    assert (done.sha256, done.processed_at, done.width) == (
        processed.sha256,
        processed.processed_at,
        processed.width,
    )

    # WHEN it runs again THEN nothing is done at all
    again = worker.rerender(KEY)
    assert again is not None and again.revision == done.revision and renderer.calls == [("xl",)]


def test_a_changed_quality_renders_that_preset_only(stores: Stores, processed: ImageRecord) -> None:
    renderer = CountingRenderer()
    sharper = MEDIUM.model_copy(update={"quality": {"jpeg": 95, "webp": 95}})
    worker = stores.service(THUMB, sharper, LARGE, renderer=renderer).service.rerendering
    before = stores.versions(processed)
    done = worker.rerender(KEY)
    assert renderer.calls == [("medium",)]
    assert done is not None
    after = stores.versions(done)
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {r.key for r in processed.renditions if r.name == "medium"}
    old_medium = {r.format: r.bytes for r in processed.renditions if r.name == "medium"}
    new_medium = {r.format: r.bytes for r in done.renditions if r.name == "medium"}
    assert all(new_medium[f] > old_medium[f] for f in old_medium)  # higher quality, more bytes


def test_a_removed_preset_is_deleted_without_rendering(
    stores: Stores, processed: ImageRecord
) -> None:
    renderer = CountingRenderer()
    worker = stores.service(THUMB, MEDIUM, renderer=renderer).service.rerendering
    before = stores.versions(processed)
    done = worker.rerender(KEY)
    assert renderer.calls == []  # nothing to render: no decode at all
    assert done is not None and {r.name for r in done.renditions} == {"thumb", "medium"}
    for r in processed.renditions:
        if r.name == "large":
            assert stores.objects.head(r.key) is None
    assert stores.versions(done) == {k: v for k, v in before.items() if "/large." not in k}


def test_failed_and_unfinished_records_are_not_rerendered(stores: Stores) -> None:
    bad = stores.objects.put("uploads/r/bad.jpg", b"<svg xmlns='x'/>", "image/jpeg")
    failed = stores.service(THUMB).service.processing.process(event_from_info(bad))
    assert failed is not None and failed.status is Status.FAILED
    renderer = CountingRenderer()
    worker = stores.service(THUMB, MEDIUM, renderer=renderer).service.rerendering
    assert not worker.is_stale(failed)
    assert worker.rerender(bad.key) == failed
    photo = imagegen.photo_jpeg(64, 64)
    pending = stores.service(THUMB).service.ingest.upload("p.jpg", photo, "image/jpeg")
    assert worker.rerender(pending.key) == pending
    assert worker.rerender("uploads/r/none.jpg") is None
    assert renderer.calls == []


def test_the_record_stays_processed_while_a_worker_rerenders(
    stores: Stores, processed: ImageRecord
) -> None:
    seen: list[ImageRecord] = []

    class Watching(CountingRenderer):
        def render(self, data: bytes, options: RenderOptions) -> RenderResult:
            found = stores.records.get(processed.image_id)
            assert found is not None
            seen.append(found)
            return super().render(data, options)

    t2 = THUMB.model_copy(update={"name": "t2"})
    worker = stores.service(THUMB, MEDIUM, LARGE, t2, renderer=Watching()).service.rerendering
    worker.rerender(KEY)
    # what users saw during the render: PROCESSED, the old renditions, a lease they never see
    [during] = seen
    assert during.status is Status.PROCESSED and during.renditions == processed.renditions
    assert during.lease_until is not None and "leaseUntil" not in during.public()


def test_a_leased_record_makes_rerenders_and_new_versions_wait(
    stores: Stores, processed: ImageRecord
) -> None:
    # GIVEN another worker re-rendering the image (PROCESSED, with a live lease)
    until = iso(utcnow() + timedelta(seconds=60))
    stores.records.put(
        processed.model_copy(update={"lease_until": until, "rendition_hash": "other"}),
        processed.revision,
    )
    # THEN a second re-render waits for the lease, and so does a new version of the original
    with pytest.raises(ImageBusyError):
        stores.service(THUMB).service.rerendering.rerender(KEY)
    newer = stores.objects.put(KEY, imagegen.photo_jpeg(300, 200), "image/jpeg")
    with pytest.raises(ImageBusyError):
        stores.service(THUMB).service.processing.process(event_from_info(newer))


def test_a_transient_failure_gives_the_lease_back(stores: Stores, processed: ImageRecord) -> None:
    class Crashing:
        def render(self, data: bytes, options: RenderOptions) -> RenderResult:
            raise WorkerCrashedError("the rendering process died")

    narrower = MEDIUM.model_copy(update={"width": 700})
    worker = stores.service(THUMB, narrower, renderer=Crashing()).service.rerendering
    with pytest.raises(WorkerCrashedError):
        worker.rerender(KEY)
    back = stores.records.get(processed.image_id)
    assert back is not None and back.status is Status.PROCESSED
    assert back.lease_until is None and back.renditions == processed.renditions


def test_settings_that_refuse_the_image_fail_it(stores: Stores, processed: ImageRecord) -> None:
    # GIVEN settings with a changed preset and a pixel limit this photo is over
    settings = Settings(
        renditions=[THUMB, MEDIUM.model_copy(update={"width": 9})], limits={"max_pixels": 1000}
    )
    worker = stores.worker(settings, InProcessRenderer()).service.rerendering
    done = worker.rerender(KEY)
    assert done is not None and done.status is Status.FAILED
    assert done.error is not None and done.error.code == "too_many_pixels"
    assert all(stores.objects.head(r.key) is None for r in processed.renditions)


def test_rerender_jobs_run_through_the_queue_once(stores: Stores, processed: ImageRecord) -> None:
    worker = stores.service(THUMB, MEDIUM, renderer=(renderer := CountingRenderer()))
    queries, rerendering = worker.service.queries, worker.service.rerendering
    stale = [r for r in queries.processed_records() if rerendering.is_stale(r)]
    assert stale == [processed]
    rerendering.queue(processed)
    rerendering.queue(processed)  # a second run while the first job waits
    assert drain(worker) == 1
    assert [r for r in queries.processed_records() if rerendering.is_stale(r)] == []
    assert renderer.calls == []  # "large" was dropped; nothing needed rendering


def test_the_lambda_worker_accepts_rerender_messages() -> None:
    found = jobs_from(Rerender(KEY).body())
    assert [job.body() for job in found] == [{"type": "rerender", "key": KEY}]
