"""The use cases over in-memory fakes, with real rendering of small generated images."""

from __future__ import annotations

import io

import pytest
from PIL import Image

import imagegen
from conftest import Wired, drain, wire
from fakes import InMemoryJobQueue, InMemoryObjectStore
from imgpipe.config import Settings
from imgpipe.core.errors import NotFoundError, WorkerCrashedError
from imgpipe.core.jobs import event_from_info
from imgpipe.core.keys import image_id_for
from imgpipe.core.model import Status
from imgpipe.core.rendering import RenderOptions, RenderResult
from imgpipe.engine import InProcessRenderer


def test_upload_then_process_writes_every_rendition(fake: Wired) -> None:
    # GIVEN a photo uploaded under a server-chosen key
    record = fake.service.ingest.upload("holiday.jpg", imagegen.photo_jpeg(1200, 900), "image/jpeg")
    assert record.status is Status.PENDING
    assert record.key.startswith("uploads/") and record.key.endswith("/holiday.jpg")

    # WHEN the queue runs
    assert drain(fake) == 1

    # THEN the record is PROCESSED with six renditions that exist and decode at their size
    done = fake.service.queries.get(record.image_id)
    assert done.status is Status.PROCESSED
    assert done.width == 1200 and done.height == 900 and done.attempts == 1
    assert {(r.name, r.format) for r in done.renditions} == {
        (n, f) for n in ("thumb", "medium", "large") for f in ("jpeg", "webp")
    }
    for r in done.renditions:
        with Image.open(io.BytesIO(fake.objects.get(r.key))) as im:
            assert im.size == (r.width, r.height)
            assert (
                r.key
                == f"renditions/{done.image_id}/{r.name}.{'jpg' if r.format == 'jpeg' else 'webp'}"
            )
    # "large" (1600) is not an upscale of a 1200 px source
    large = next(r for r in done.renditions if r.name == "large")
    assert (large.width, large.height) == (1200, 900)


def test_same_key_twice_is_one_record_and_one_render(fake: Wired) -> None:
    info = fake.objects.put("uploads/a/cat.png", imagegen.rgba_png(64, 48), "image/png")
    fake.service.ingest.accept(info)
    fake.service.ingest.accept(info)  # a duplicate event: dedup keeps one job
    assert drain(fake) == 1
    first = fake.service.queries.get(image_id_for(info.key))
    # the same event after it finished does no work: revision and time unchanged
    again = fake.service.processing.process(event_from_info(info))
    assert again is not None
    assert again.revision == first.revision and again.processed_at == first.processed_at
    assert fake.service.queries.list(None, 10, None).items == [first]


def test_new_version_reprocesses_and_old_event_cannot_win(fake: Wired) -> None:
    key = "uploads/v/photo.jpg"
    old = fake.objects.put(key, imagegen.photo_jpeg(400, 300), "image/jpeg")
    fake.service.processing.process(event_from_info(old))
    new = fake.objects.put(key, imagegen.photo_jpeg(300, 400), "image/jpeg")
    fake.service.processing.process(event_from_info(new))
    # a late copy of the first event arrives
    fake.service.processing.process(event_from_info(old))
    record = fake.service.queries.get(image_id_for(key))
    assert record.sequencer == new.sequencer
    assert (record.width, record.height) == (300, 400)


def test_bad_image_ends_failed_with_a_code(fake: Wired) -> None:
    info = fake.objects.put("uploads/x/notes.jpg", b"<svg xmlns='x'/>", "image/jpeg")
    record = fake.service.processing.process(event_from_info(info))
    assert record is not None and record.status is Status.FAILED
    assert record.error is not None and record.error.code == "unsupported_format"
    assert record.renditions == []


def test_too_large_fails_before_reading_the_bytes(settings: Settings) -> None:
    small = settings.model_copy(
        update={"limits": settings.limits.model_copy(update={"max_bytes": 1000})}
    )
    wired = wire(small)
    info = wired.objects.put("uploads/x/big.jpg", imagegen.photo_jpeg(300, 300), "image/jpeg")
    record = wired.service.processing.process(event_from_info(info))
    assert record is not None and record.error is not None
    assert record.error.code == "too_large"


class CrashingRenderer:
    def render(self, data: bytes, options: RenderOptions) -> RenderResult:
        raise WorkerCrashedError("the rendering process died (exit code -9)")


class WrongFactsRenderer:
    """Renders for real, then hands back a metadata value the record cannot hold."""

    def render(self, data: bytes, options: RenderOptions) -> RenderResult:
        result = InProcessRenderer().render(data, options)
        return result._replace(facts={**result.facts, "width": "wide"})


def test_metadata_the_record_refuses_fails_the_image_before_any_file_is_written(
    settings: Settings,
) -> None:
    # The rendering process hands the metadata back as plain data; the service validates it
    # first, so a bad value is a FAILED record (internal), not an exception or orphan files.
    objects = InMemoryObjectStore()
    service = wire(settings, objects=objects, renderer=WrongFactsRenderer()).service
    info = objects.put("uploads/x/a.jpg", imagegen.photo_jpeg(64, 48), "image/jpeg")
    record = service.processing.process(event_from_info(info))
    assert record is not None and record.status is Status.FAILED
    assert record.error is not None and record.error.code == "internal"
    assert "metadata is invalid" in record.error.message and "width" in record.error.message
    assert record.renditions == []
    assert [o.key for o in objects.list("") if not o.key.startswith("uploads/")] == []


def test_transient_failures_retry_then_fail_visibly_and_dead_letter(settings: Settings) -> None:
    # GIVEN a renderer whose process dies on every attempt, and 3 attempts allowed
    queue = InMemoryJobQueue(max_receives=3)
    wired = wire(settings, queue=queue, renderer=CrashingRenderer())
    record = wired.service.ingest.upload("a.jpg", imagegen.photo_jpeg(64, 64), "image/jpeg")
    # WHEN the queue runs until nothing is left to receive
    ran = drain(wired, max_attempts=3)
    # THEN it was tried 3 times, the record says why, and the job is dead-lettered for redrive
    assert ran == 3
    failed = wired.service.queries.get(record.image_id)
    assert failed.status is Status.FAILED
    assert failed.error is not None and failed.error.code == "worker_crashed"
    assert "gave up after 3 attempts" in failed.error.message
    assert queue.stats().dead == 1
    assert queue.redrive() == 1
    assert queue.stats().visible == 1


def test_delete_removes_original_renditions_and_record(fake: Wired) -> None:
    record = fake.service.ingest.upload("x.png", imagegen.rgba_png(40, 30), "image/png")
    drain(fake)
    keys = [r.key for r in fake.service.queries.get(record.image_id).renditions]
    fake.service.maintenance.delete(record.image_id)
    assert fake.objects.head(record.key) is None
    assert all(fake.objects.head(k) is None for k in keys)
    with pytest.raises(NotFoundError):
        fake.service.queries.get(record.image_id)


def test_original_removed_by_other_means_drops_record(fake: Wired) -> None:
    record = fake.service.ingest.upload("x.png", imagegen.rgba_png(40, 30), "image/png")
    drain(fake)
    fake.objects.delete(record.key)
    fake.service.maintenance.on_removed(record.key)
    assert fake.records.get(record.image_id) is None
    assert list(fake.objects.list("renditions/")) == []


def test_original_gone_before_processing_fails_not_found(fake: Wired) -> None:
    record = fake.service.ingest.upload("x.png", imagegen.rgba_png(40, 30), "image/png")
    fake.objects.delete(record.key)
    drain(fake)
    gone = fake.service.queries.get(record.image_id)
    assert gone.status is Status.FAILED and gone.error is not None
    assert gone.error.code == "not_found"


def test_process_key_now_and_backfill(fake: Wired) -> None:
    with pytest.raises(NotFoundError):
        fake.service.processing.process_key_now("uploads/nope.jpg")
    with pytest.raises(NotFoundError):
        fake.service.processing.process_key_now("renditions/x/thumb.jpg")
    fake.objects.put("uploads/dropped/a.jpg", imagegen.photo_jpeg(50, 40), "image/jpeg")
    fake.objects.put("uploads/dropped/b.jpg", imagegen.photo_jpeg(50, 40), "image/jpeg")
    assert fake.service.maintenance.backfill() == 2
    # unfinished records are offered again, but the queue holds one job per version
    assert fake.service.maintenance.backfill() == 2
    assert fake.queue.stats().visible == 2
    assert drain(fake) == 2
    assert fake.service.maintenance.backfill() == 0
    record = fake.service.processing.process_key_now("uploads/dropped/a.jpg")
    assert record.status is Status.PROCESSED and record.attempts == 2


def test_keys_outside_uploads_are_never_processed(fake: Wired) -> None:
    info = fake.objects.put("renditions/x/thumb.jpg", imagegen.photo_jpeg(10, 10), "image/jpeg")
    assert fake.service.processing.process(event_from_info(info)) is None
    assert fake.records.get(image_id_for(info.key)) is None


def test_copy_processed_before_its_original_still_names_it(fake: Wired) -> None:
    """Two uploads of the same bytes, the later one processed first (two workers): when the
    original finishes, its worker sees the copy and links it, so the order of work does not
    decide whether a duplicate is recorded."""
    data = imagegen.photo_jpeg(320, 240)
    a = fake.service.ingest.accept(fake.objects.put("uploads/1/a.jpg", data, "image/jpeg"))
    b = fake.service.ingest.accept(fake.objects.put("uploads/2/a.jpg", data, "image/jpeg"))
    # the order of duplicateOf: upload time, then imageId (the two may share a millisecond)
    first, second = sorted((a, b), key=lambda r: (r.uploaded_at, r.image_id))

    copy = fake.service.processing.process(event_from_info(fake.objects.head(second.key)))  # type: ignore[arg-type]
    assert copy is not None and copy.status is Status.PROCESSED and copy.duplicate_of is None
    original = fake.service.processing.process(event_from_info(fake.objects.head(first.key)))  # type: ignore[arg-type]
    assert original is not None and original.duplicate_of is None

    assert fake.service.queries.get(second.image_id).duplicate_of == first.image_id
    assert fake.service.queries.get(first.image_id).duplicate_of is None
