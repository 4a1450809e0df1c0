"""The service's render gate: more job threads than rendering processes, and no image leased
before a process is free for it.

The local pool runs two job threads per rendering process so that one thread writes an
image's renditions and record while the next image renders. These tests drive two threads
through `Processing.process` with a gate of one, a renderer that waits to be let go, and a
store whose rendition writes wait too, and check each step in order: the second image is
read but not leased while the first renders, and it is leased and rendering while the
first one's files are still being written.
"""

from __future__ import annotations

import threading
from typing import BinaryIO

import imagegen
from conftest import wire
from fakes import InMemoryMetadataStore, InMemoryObjectStore
from imgpipe.config import RenditionSpec, Settings
from imgpipe.core.jobs import event_from_info
from imgpipe.core.keys import image_id_for
from imgpipe.core.model import ImageRecord, ObjectInfo, Status
from imgpipe.core.rendering import RenderOptions, RenderResult
from imgpipe.engine import InProcessRenderer
from imgpipe.service import Renderer, UseCases

WAIT_S = 3.0  # only reached when the code under test is wrong (a deadlock)


class HeldRenderer:
    """Renders for real, each image only once the test lets that image's key go."""

    def __init__(self) -> None:
        self.started: dict[bytes, threading.Event] = {}
        self.release: dict[bytes, threading.Event] = {}
        self.rendered: list[bytes] = []  # every render that ran, held or not

    def expect(self, data: bytes) -> None:
        self.started[data] = threading.Event()
        self.release[data] = threading.Event()

    def render(self, data: bytes, options: RenderOptions) -> RenderResult:
        if data in self.started:
            self.started[data].set()
            assert self.release[data].wait(WAIT_S)
        self.rendered.append(data)
        return InProcessRenderer().render(data, options)


class HeldWrites(InMemoryObjectStore):
    """Rendition writes of one image wait to be let go; reads are logged."""

    def __init__(self) -> None:
        super().__init__()
        self.hold_prefix: str | None = None
        self.writing = threading.Event()
        self.let_write = threading.Event()
        self.read: dict[str, threading.Event] = {}

    def get(self, key: str, version_id: str | None = None) -> bytes:
        data = super().get(key, version_id)
        self.read.setdefault(key, threading.Event()).set()
        return data

    def put(
        self,
        key: str,
        body: bytes | BinaryIO,
        content_type: str,
        *,
        if_absent: bool = False,
        durable: bool = True,
    ) -> ObjectInfo:
        if self.hold_prefix and key.startswith(self.hold_prefix):
            self.writing.set()
            assert self.let_write.wait(WAIT_S)
        return super().put(key, body, content_type, if_absent=if_absent, durable=durable)


def _service(
    objects: InMemoryObjectStore,
    renderer: Renderer,
    settings: Settings,
    *,
    gate: int | None,
    records: InMemoryMetadataStore | None = None,
) -> UseCases:
    wired = wire(
        settings, objects=objects, records=records, renderer=renderer, renders_at_once=gate
    )
    return wired.service


def _status(service: UseCases, key: str) -> tuple[Status, str | None]:
    record = service.queries.find(image_id_for(key))
    assert record is not None
    return record.status, record.lease_until


def test_a_second_image_is_read_but_not_leased_until_a_process_is_free_then_renders_while_the_first_writes(  # noqa: E501
    settings: Settings,
) -> None:
    objects, renderer = HeldWrites(), HeldRenderer()
    service = _service(objects, renderer, settings, gate=1)
    first_bytes, second_bytes = imagegen.photo_jpeg(320, 240), imagegen.photo_jpeg(240, 320)
    renderer.expect(first_bytes)
    renderer.expect(second_bytes)
    first = service.ingest.upload("first.jpg", first_bytes, "image/jpeg")
    second = service.ingest.upload("second.jpg", second_bytes, "image/jpeg")
    objects.hold_prefix = f"renditions/{first.image_id}/"
    done: dict[str, ImageRecord | None] = {}

    def run(record: ImageRecord) -> None:
        event = event_from_info(objects.head(record.key))  # type: ignore[arg-type]
        done[record.key] = service.processing.process(event)

    threads = [threading.Thread(target=run, args=(r,)) for r in (first, second)]
    threads[0].start()
    assert renderer.started[first_bytes].wait(WAIT_S)
    threads[1].start()

    # WHILE the first image renders: the second thread has read its original already (so a
    # freed process waits only for the lease), but it has not leased its image
    assert objects.read.setdefault(second.key, threading.Event()).wait(WAIT_S)
    assert _status(service, first.key)[0] is Status.PROCESSING
    assert _status(service, second.key) == (Status.PENDING, None)
    assert not renderer.started[second_bytes].is_set()

    # WHEN the first render is back, and its rendition writes are held
    renderer.release[first_bytes].set()
    assert objects.writing.wait(WAIT_S)

    # THEN the second image is leased and rendering while the first's files are being written
    assert renderer.started[second_bytes].wait(WAIT_S)
    status, lease = _status(service, second.key)
    assert status is Status.PROCESSING and lease is not None
    assert _status(service, first.key)[0] is Status.PROCESSING  # not committed yet

    objects.let_write.set()
    renderer.release[second_bytes].set()
    for thread in threads:
        thread.join(WAIT_S)
        assert not thread.is_alive()
    for record in (first, second):
        finished = done[record.key]
        assert finished is not None and finished.status is Status.PROCESSED
        assert len(finished.renditions) == 6 and finished.lease_until is None


def test_without_a_gate_the_service_leases_at_once(settings: Settings) -> None:
    # Lambda and `imgpipe process` build the service without a gate: each call renders in its
    # own thread, nothing waits.
    renderer = HeldRenderer()
    objects = InMemoryObjectStore()
    service = _service(objects, renderer, settings, gate=None)
    datas = [imagegen.photo_jpeg(200, 150), imagegen.photo_jpeg(150, 200)]
    records = [service.ingest.upload(f"{n}.jpg", d, "image/jpeg") for n, d in enumerate(datas)]
    for data in datas:
        renderer.expect(data)
    threads = [
        threading.Thread(
            target=service.processing.process,
            args=(event_from_info(objects.head(r.key)),),  # type: ignore[arg-type]
        )
        for r in records
    ]
    for thread in threads:
        thread.start()
    # both render at the same time
    assert all(renderer.started[d].wait(WAIT_S) for d in datas)
    assert all(_status(service, r.key)[0] is Status.PROCESSING for r in records)
    for data in datas:
        renderer.release[data].set()
    for thread in threads:
        thread.join(WAIT_S)
    assert all(_status(service, r.key)[0] is Status.PROCESSED for r in records)


def test_a_re_render_waits_for_a_free_process_before_it_leases(settings: Settings) -> None:
    # GIVEN a photo processed under one preset, and a worker whose settings add another
    objects, records = InMemoryObjectStore(), InMemoryMetadataStore()
    thumb = RenditionSpec(name="thumb", width=256, height=256)
    xl = RenditionSpec(name="xl", width=1000, height=1000, formats=["webp"])
    first = _service(
        objects,
        InProcessRenderer(),
        settings.model_copy(update={"renditions": [thumb]}),
        gate=None,
        records=records,
    )
    old = first.ingest.upload("old.jpg", imagegen.photo_jpeg(640, 480), "image/jpeg")
    first.processing.process(event_from_info(objects.head(old.key)))  # type: ignore[arg-type]
    renderer = HeldRenderer()
    worker = _service(
        objects,
        renderer,
        settings.model_copy(update={"renditions": [thumb, xl]}),
        gate=1,
        records=records,
    )
    busy_bytes = imagegen.photo_jpeg(320, 240)
    renderer.expect(busy_bytes)
    busy = worker.ingest.upload("busy.jpg", busy_bytes, "image/jpeg")
    holder = threading.Thread(
        target=worker.processing.process,
        args=(event_from_info(objects.head(busy.key)),),  # type: ignore[arg-type]
    )
    holder.start()
    assert renderer.started[busy_bytes].wait(WAIT_S)  # the one process is taken

    # WHEN the re-render job starts while that image renders
    done: list[ImageRecord | None] = []
    rerender = threading.Thread(target=lambda: done.append(worker.rerendering.rerender(old.key)))
    rerender.start()
    rerender.join(0.3)  # long enough to lease, were it not gated

    # THEN it has not leased the image, and renders once the process is free
    assert rerender.is_alive()
    assert _status(worker, old.key) == (Status.PROCESSED, None)
    renderer.release[busy_bytes].set()
    for thread in (holder, rerender):
        thread.join(WAIT_S)
        assert not thread.is_alive()
    assert done and done[0] is not None
    assert {r.name for r in done[0].renditions} == {"thumb", "xl"}
    assert done[0].lease_until is None
    assert len(renderer.rendered) == 2  # the held image, then the stale preset
