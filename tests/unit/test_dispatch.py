"""The one dispatcher and give-up rule of both workers (service.dispatch), and how the local
worker treats a queue message that is no job."""

from __future__ import annotations

import imagegen
from conftest import Wired, drain, wire
from fakes import InMemoryJobQueue
from imgpipe.config import RenditionSpec, Settings
from imgpipe.core import jobs
from imgpipe.core.errors import WorkerCrashedError
from imgpipe.core.jobs import event_from_info
from imgpipe.core.keys import image_id_for
from imgpipe.core.model import Status
from imgpipe.service import dispatch, give_up

KEY = "uploads/d/photo.jpg"


def test_each_job_runs_through_its_use_case(fake: Wired, settings: Settings) -> None:
    # GIVEN a stored original
    info = fake.objects.put(KEY, imagegen.photo_jpeg(320, 240), "image/jpeg")

    # WHEN its created job runs THEN it is processed
    dispatch(jobs.Created(event_from_info(info)), fake.service)
    record = fake.records.get(image_id_for(KEY))
    assert record is not None and record.status is Status.PROCESSED
    assert {r.name for r in record.renditions} == {"thumb", "medium", "large"}

    # WHEN a worker whose settings add a preset runs its rerender job THEN that preset is added
    xl = RenditionSpec(name="xl", width=1000, height=1000, formats=["webp"])
    wider = settings.model_copy(update={"renditions": [*settings.renditions, xl]})
    worker = wire(wider, objects=fake.objects, records=fake.records, queue=fake.queue)
    dispatch(jobs.Rerender(KEY), worker.service)
    record = fake.records.get(image_id_for(KEY))
    assert record is not None and {r.name for r in record.renditions} == {
        "thumb",
        "medium",
        "large",
        "xl",
    }

    # WHEN the original is deleted and its removed job runs THEN renditions and record go
    fake.objects.delete(KEY)
    dispatch(jobs.Removed(KEY), fake.service)
    assert fake.records.get(image_id_for(KEY)) is None
    assert list(fake.objects.list("renditions/")) == []


def test_giving_up_fails_the_record_of_a_created_job_only(fake: Wired) -> None:
    # GIVEN an upload still PENDING, whose jobs failed on their last attempts
    pending = fake.service.ingest.upload("a.jpg", imagegen.photo_jpeg(64, 48), "image/jpeg")
    info = fake.objects.head(pending.key)
    assert info is not None
    crashed = WorkerCrashedError("the rendering process died")

    # WHEN a removal or a re-render of it is given up on THEN the record stands as it was
    give_up(jobs.Removed(pending.key), crashed, 5, fake.service)
    give_up(jobs.Rerender(pending.key), crashed, 5, fake.service)
    assert fake.service.queries.get(pending.image_id) == pending

    # WHEN its created job is given up on THEN the record ends FAILED, saying why
    give_up(jobs.Created(event_from_info(info)), crashed, 5, fake.service)
    failed = fake.service.queries.get(pending.image_id)
    assert failed.status is Status.FAILED and failed.error is not None
    assert failed.error.code == "worker_crashed"
    assert failed.error.message == "gave up after 5 attempts: the rendering process died"


def test_the_local_worker_drops_an_unknown_message_and_dead_letters_a_malformed_job(
    settings: Settings,
) -> None:
    # GIVEN a message of no known type, and a created job without its sequencer
    queue = InMemoryJobQueue(max_receives=2)
    wired = wire(settings, queue=queue)
    queue.send({"type": "noop"})
    queue.send({"type": "created", "key": "uploads/a.jpg"})

    # WHEN the queue runs until nothing is left to receive
    ran = drain(wired, max_attempts=2)

    # THEN the unknown one was acknowledged at once; the malformed one was tried as often as
    # any job may be, then dead-lettered (`imgpipe redrive` can bring it back); no record
    assert ran == 3
    stats = queue.stats()
    assert (stats.visible, stats.in_flight, stats.dead) == (0, 0, 1)
    assert wired.records.list(None, 10, None).items == []
