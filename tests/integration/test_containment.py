"""A decoder that crashes, hangs or hoards memory takes down one rendering process, never the
server: the call fails with a transient error, the process is replaced, and the next image
renders. Through the service, such an image ends FAILED after its retries; the rest is fine."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import imagegen
import misbehaving
from conftest import drain, wire
from fakes import InMemoryJobQueue
from imgpipe.config import Settings
from imgpipe.core.errors import (
    CorruptImageError,
    InvalidRequestError,
    TooManyPixelsError,
    WorkerCrashedError,
)
from imgpipe.core.files import OpenFile
from imgpipe.core.img_url import parse_img_path
from imgpipe.core.model import Status
from imgpipe.core.rendering import RenderOptions, RenderResult
from imgpipe.core.transform import TransformLimits, TransformRequest
from imgpipe.engine.renderers import InProcessRenderer, RenderFn, SubprocessRenderer

OPTIONS = Settings().render_options()
GOOD = imagegen.photo_jpeg(320, 240)


def renderer(render_fn: RenderFn, **kwargs: object) -> Iterator[SubprocessRenderer]:
    r = SubprocessRenderer(1, render_fn=render_fn, **kwargs)  # type: ignore[arg-type]
    yield r
    r.close()


@pytest.fixture
def crashing() -> Iterator[SubprocessRenderer]:
    yield from renderer(misbehaving.crash, timeout_s=60)


@pytest.fixture
def hanging() -> Iterator[SubprocessRenderer]:
    yield from renderer(misbehaving.hang, timeout_s=3)


@pytest.fixture
def hoarding() -> Iterator[SubprocessRenderer]:
    yield from renderer(misbehaving.hoard, timeout_s=60, memory_mb=768)


def test_a_crash_kills_one_process_and_the_next_image_renders(
    crashing: SubprocessRenderer,
) -> None:
    before = crashing.pids()
    with pytest.raises(WorkerCrashedError, match="died"):
        crashing.render(b"CRASH", OPTIONS)
    assert crashing.pids() != before  # replaced
    assert len(crashing.render(GOOD, OPTIONS).renditions) == 6


def test_a_crash_on_an_original_sent_as_a_file_leaves_the_file_to_its_opener(
    crashing: SubprocessRenderer, tmp_path: Path
) -> None:
    path = tmp_path / "original"
    path.write_bytes(b"CRASH")
    with OpenFile(os.open(path, os.O_RDONLY), 5) as original:
        with pytest.raises(WorkerCrashedError, match="died"):
            crashing.render(original, OPTIONS)
        assert os.pread(original.fd, 5, 0) == b"CRASH"  # still open: the opener closes it
    path.write_bytes(GOOD)
    with OpenFile(os.open(path, os.O_RDONLY), len(GOOD)) as original:
        result = crashing.render(original, OPTIONS)
    assert len(result.renditions) == 6
    assert result.sha256 == hashlib.sha256(GOOD).hexdigest()


def test_one_process_renders_with_whatever_options_each_call_brings(
    crashing: SubprocessRenderer,
) -> None:
    # The options cross to a process only when they differ from its last job's.
    thumbs = Settings(
        renditions=[{"name": "t", "width": 32, "height": 32, "formats": ["webp"]}]
    ).render_options()
    pids = crashing.pids()
    sizes = [
        sorted((r.name, r.width, r.format) for r in crashing.render(GOOD, options).renditions)
        for options in (OPTIONS, thumbs, thumbs, OPTIONS)
    ]
    assert crashing.pids() == pids  # one process did all four
    assert sizes[1] == sizes[2] == [("t", 32, "webp")]
    assert sizes[0] == sizes[3] and len(sizes[0]) == 6


# The parent is a script that imports the CLI at the top, as the `imgpipe` console script does:
# a multiprocessing spawn would first run it again in each rendering process.
_PARENT = """
import json, os, sys
import imgpipe.entrypoints.cli
import misbehaving
from imgpipe.engine import SubprocessRenderer
from imgpipe.config import Settings
from imgpipe.core.files import OpenFile
from imgpipe.core.rendering import RenderOptions

if __name__ == "__main__":
    renderer = SubprocessRenderer(1, 60, render_fn=misbehaving.render_and_list_modules)
    options = Settings().render_options()
    # the original as bytes, then as the local store hands it over: an open file
    results = [renderer.render(sys.stdin.buffer.read(), options)]
    with OpenFile(os.open(sys.argv[1], os.O_RDONLY), os.path.getsize(sys.argv[1])) as original:
        results.append(renderer.render(original, options))
    renderer.close()
    json.dump([{"modules": r.facts["modules"], "renditions": len(r.renditions),
                "size": [r.metadata.width, r.metadata.height],
                "sha256": r.metadata.sha256} for r in results], sys.stdout)
"""


def test_a_rendering_process_imports_only_what_rendering_needs(tmp_path: Path) -> None:
    # Started as `python -c`, not as a multiprocessing spawn, and handed plain options: no
    # CLI, no pydantic (about 23 MB a process between them); the metadata validates here.
    script = tmp_path / "parent"
    script.write_text(_PARENT)
    (tmp_path / "good.jpg").write_bytes(GOOD)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "good.jpg")],
        input=GOOD,
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr.decode()
    as_bytes, as_file = json.loads(out.stdout)
    assert as_file["renditions"] == 6 and as_file["size"] == [320, 240]
    assert as_file["sha256"] == hashlib.sha256(GOOD).hexdigest()
    report = as_file  # what the process had imported once it had rendered both ways
    roots = {name.split(".")[0] for name in report["modules"]}
    assert {"pyvips", "PIL", "imgpipe"} <= roots
    assert not roots & {"pydantic", "pydantic_core", "pydantic_settings", "typer", "rich"}
    assert not {"imgpipe.config", "imgpipe.entrypoints.cli"} & set(report["modules"])
    # Nor what a render does not need: OpenSSL (the parent hashes the original, which it
    # holds anyway), multiprocessing (the socket's framing is render_child.Channel),
    # statistics, _strptime, or dataclasses and the inspect it imports (0.4-3.6 MB each)
    assert not roots & {"_hashlib", "hashlib", "multiprocessing", "statistics"}
    assert not roots & {"_strptime", "dataclasses", "inspect"}
    assert as_bytes["renditions"] == 6 and as_bytes["size"] == [320, 240]
    assert as_bytes["sha256"] == hashlib.sha256(GOOD).hexdigest()


def test_a_process_that_cannot_start_fails_each_job_as_a_crash() -> None:
    # Its render function cannot be imported there: the process exits at once; each job
    # fails as a crash (transient: retried, then dead-lettered), and the pool stays usable.
    def unimportable(data: bytes, options: RenderOptions) -> RenderResult:
        raise AssertionError("never runs")

    unimportable.__module__ = "no_such_module_for_imgpipe"
    for r in renderer(unimportable, timeout_s=30):
        for _ in range(2):
            with pytest.raises(WorkerCrashedError, match="died"):
                r.render(GOOD, OPTIONS)
        assert len(r.pids()) == 1


def test_a_hang_is_killed_at_the_time_limit(hanging: SubprocessRenderer) -> None:
    started = time.monotonic()
    with pytest.raises(WorkerCrashedError, match="longer than 3 s"):
        hanging.render(b"HANG", OPTIONS)
    assert time.monotonic() - started < 10
    assert len(hanging.render(GOOD, OPTIONS).renditions) == 6


def test_memory_is_capped_per_process(hoarding: SubprocessRenderer) -> None:
    # the allocation fails inside the child at the address-space limit: a permanent error
    with pytest.raises(TooManyPixelsError, match="not enough memory"):
        hoarding.render(b"HOARD", OPTIONS)
    assert len(hoarding.render(GOOD, OPTIONS).renditions) == 6


def test_the_service_retries_a_crash_then_fails_it_and_carries_on(
    crashing: SubprocessRenderer, settings: Settings
) -> None:
    # GIVEN a poison upload between two good ones, and 3 attempts allowed
    queue = InMemoryJobQueue(max_receives=3)
    wired = wire(settings, queue=queue, renderer=crashing)
    service = wired.service
    good1 = service.ingest.upload("a.jpg", GOOD, "image/jpeg")
    poison = service.ingest.upload("poison.jpg", b"CRASH" + GOOD, "image/jpeg")
    good2 = service.ingest.upload("b.jpg", GOOD, "image/jpeg")
    # WHEN the queue runs to the end
    drain(wired, max_attempts=3)
    # THEN the poison is FAILED with the reason, dead-lettered, and the others PROCESSED
    record = service.queries.get(poison.image_id)
    assert record.status is Status.FAILED
    assert record.error is not None and record.error.code == "worker_crashed"
    assert "gave up after 3 attempts" in record.error.message
    assert queue.stats().dead == 1
    assert service.queries.get(good1.image_id).status is Status.PROCESSED
    assert service.queries.get(good2.image_id).status is Status.PROCESSED


# --- on-request transforms run in the same processes, under the same limits ---------------


def transform_request(options: str, limits: TransformLimits | None = None) -> TransformRequest:
    settings = Settings()
    url = parse_img_path(f"/_/{options}/plain/x", keys=[], unsafe=True, presets={})
    return TransformRequest(
        url.transform,
        ("webp",),
        settings.transform.encoder(),
        settings.background,
        settings.limits.render_limits(),
        limits or settings.transform.limits(),
    )


def test_a_transform_runs_in_a_rendering_process_as_in_this_one(tmp_path: Path) -> None:
    # GIVEN one rendering process, and the same original as bytes and as an open file
    path = tmp_path / "original"
    path.write_bytes(GOOD)
    request = transform_request("rs:fill:100:50/g:sm")
    for r in renderer(misbehaving.crash, timeout_s=60, transform_fn=misbehaving.crash_transform):
        pid = r.pids()
        # WHEN it transforms both, and renders in between
        from_bytes = r.transform(GOOD, request)
        assert len(r.render(GOOD, OPTIONS).renditions) == 6
        with OpenFile(os.open(path, os.O_RDONLY), len(GOOD)) as original:
            from_file = r.transform(original, request)
        # THEN both are the size and format asked for, as the in-process renderer makes them
        here = InProcessRenderer().transform(GOOD, request)
        for variant in (from_bytes, from_file):
            assert (variant.format, variant.width, variant.height) == ("webp", 100, 50)
            assert (here.width, here.height) == (variant.width, variant.height)
        assert r.pids() == pid  # one process did it all


def test_a_transform_that_crashes_its_process_is_a_transient_error() -> None:
    request = transform_request("w:50")
    for r in renderer(misbehaving.crash, timeout_s=60, transform_fn=misbehaving.crash_transform):
        before = r.pids()
        with pytest.raises(WorkerCrashedError, match="died"):
            r.transform(b"CRASH", request)
        assert r.pids() != before
        assert r.transform(GOOD, request).width == 50


def test_a_transform_that_hangs_is_killed_at_the_time_limit() -> None:
    request = transform_request("w:50")
    for r in renderer(misbehaving.hang, timeout_s=3, transform_fn=misbehaving.hang_transform):
        with pytest.raises(WorkerCrashedError, match="longer than 3 s"):
            r.transform(b"HANG", request)
        assert r.transform(GOOD, request).width == 50


def test_a_transform_refused_in_the_process_comes_back_as_its_error() -> None:
    small = TransformLimits(max_width=100, max_height=100)
    for r in renderer(misbehaving.crash, timeout_s=60, transform_fn=misbehaving.crash_transform):
        with pytest.raises(InvalidRequestError, match="the result is 200x150 px"):
            r.transform(GOOD, transform_request("w:200", small))
        with pytest.raises(CorruptImageError):
            r.transform(GOOD[:200], transform_request("w:50"))
        pid = r.pids()
        assert r.transform(GOOD, transform_request("w:50")).width == 50
        assert r.pids() == pid  # a refusal is not a crash


def test_a_rendering_process_that_transforms_imports_only_what_that_needs() -> None:
    for r in renderer(
        misbehaving.crash, timeout_s=60, transform_fn=misbehaving.transform_and_list_modules
    ):
        modules = set(r.transform(GOOD, transform_request("w:50/g:sm")).data.decode().split())
    roots = {name.split(".")[0] for name in modules}
    assert "imgpipe.engine.transform" in modules
    assert not roots & {"pydantic", "pydantic_core", "pydantic_settings", "typer", "rich"}
    assert not roots & {"_hashlib", "hashlib", "hmac", "multiprocessing", "dataclasses"}
    assert "imgpipe.core.img_url" not in modules  # the grammar and its HMAC stay in the parent
