"""Shared fixtures: settings in a temporary data folder, services over fakes or local adapters."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

import imagegen as gen
from engine_support import DEFAULTS
from fakes import InMemoryJobQueue, InMemoryMetadataStore, InMemoryObjectStore
from imgpipe.adapters.local.worker_pool import LocalWorkerPool
from imgpipe.bootstrap import LocalApp, build_local, service_options
from imgpipe.config import Settings
from imgpipe.core.ports import EventPublisher, JobQueue, Metrics, NullMetrics
from imgpipe.core.rendering import RenderResult
from imgpipe.engine import InProcessRenderer, render
from imgpipe.service import Renderer, ServiceOptions, UseCaseJobs, UseCases


@pytest.fixture(autouse=True)
def _no_imgpipe_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the settings they make, never the developer's environment."""
    import os

    for name in list(os.environ):
        if name.startswith("IMGPIPE_"):
            monkeypatch.delenv(name)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(local={"data_dir": tmp_path / "data"}, server={"watch_uploads": False})


@dataclass
class Wired:
    """The use cases over in-memory fakes, the fakes at hand for a test to look into."""

    objects: InMemoryObjectStore
    records: InMemoryMetadataStore
    queue: InMemoryJobQueue
    service: UseCases
    options: ServiceOptions


def wire(
    settings: Settings,
    *,
    objects: InMemoryObjectStore | None = None,
    records: InMemoryMetadataStore | None = None,
    queue: InMemoryJobQueue | None = None,
    renderer: Renderer | None = None,
    metrics: Metrics | None = None,
    events: EventPublisher | None = None,
    store_notifies: bool = False,
    renders_at_once: int | None = None,
) -> Wired:
    """The use cases as bootstrap builds them (options from `settings`), over fakes: the ones
    given (stores that several services share), new ones otherwise."""
    options = service_options(
        settings, store_notifies=store_notifies, renders_at_once=renders_at_once
    )
    objects = objects if objects is not None else InMemoryObjectStore()
    records = records if records is not None else InMemoryMetadataStore()
    queue = queue if queue is not None else InMemoryJobQueue()
    service = UseCases.build(
        objects,
        records,
        queue,
        renderer or InProcessRenderer(),
        metrics or NullMetrics(),
        options,
        events=events,
    )
    return Wired(objects, records, queue, service, options)


@pytest.fixture
def fake(settings: Settings) -> Wired:
    return wire(settings)


@pytest.fixture
def local_app(settings: Settings) -> Iterator[LocalApp]:
    """The real local wiring (files, SQLite), rendering in-process, no background threads:
    tests run the queue with `drain`."""
    with local_app_with(settings) as app:
        yield app


@pytest.fixture(scope="module")
def large_photo() -> bytes:
    """A 2000x1500 photo with EXIF and GPS, made once per test module (the engine's tests)."""
    return gen.photo_jpeg(2000, 1500, gps=True)


@pytest.fixture(scope="module")
def large_result(large_photo: bytes) -> RenderResult:
    return render(large_photo, DEFAULTS)


@contextmanager
def local_app_with(settings: Settings, **sections: dict[str, Any]) -> Iterator[LocalApp]:
    """local_app's wiring over `settings` with some fields of its sections changed, as in
    `local_app_with(settings, limits={"max_bytes": 2000})`; stopped at the end."""
    changed = settings.model_copy(
        update={
            name: getattr(settings, name).model_copy(update=fields)
            for name, fields in sections.items()
        }
    )
    app = build_local(changed, renderer=InProcessRenderer(), with_workers=False)
    try:
        yield app
    finally:
        app.stop()


class Runs(Protocol):
    """A service and the queue its jobs wait in (a LocalApp, an AwsApp, a Wired)."""

    @property
    def service(self) -> UseCases: ...

    @property
    def queue(self) -> JobQueue: ...


def drain(app: Runs, max_attempts: int = 5, rounds: int = 50) -> int:
    """Run queued jobs in this thread until the queue is empty; returns how many ran."""
    pool = LocalWorkerPool(
        UseCaseJobs(app.service),
        app.queue,
        workers=1,
        visibility_s=30,
        max_attempts=max_attempts,
        backoff=lambda attempt: 0.0,
    )
    ran = 0
    for _ in range(rounds):
        messages = app.queue.receive(10, 30)
        if not messages:
            break
        for message in messages:
            pool.run_one(message)
            ran += 1
    return ran
