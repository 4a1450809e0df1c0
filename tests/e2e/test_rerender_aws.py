"""Versioned renditions on AWS, offline: moto's server holds the bucket, table and queues; the
workers' presets come from IMGPIPE_RENDITIONS (JSON) as the template sets it; `imgpipe
reprocess --stale` queues to SQS and the worker handler re-renders into S3 and DynamoDB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest
from test_aws_flow import Stack, as_aws_sends, cold_start, next_sequencer, put_original, stack

import imagegen
from imgpipe.config import Settings
from imgpipe.core.model import ImageRecord, Status
from motoserver import aws, moto_endpoint

__all__ = ["aws", "moto_endpoint", "stack"]  # fixtures

IMGPIPE = [sys.executable, "-m", "imgpipe.entrypoints.cli"]
THUMB = {"name": "thumb", "width": 96, "height": 96}
MEDIUM = {"name": "medium", "width": 240, "height": 240}
SMALL = {"name": "small", "width": 160, "height": 160, "formats": ["webp"]}
KEYS = ["uploads/stale/1.jpg", "uploads/stale/2.jpg"]


def use_presets(monkeypatch: pytest.MonkeyPatch, *presets: dict[str, Any]) -> Settings:
    """Deploy new presets: the workers' environment changes and they start cold."""
    monkeypatch.setenv("IMGPIPE_RENDITIONS", json.dumps(list(presets)))
    cold_start()
    return Settings()


def imgpipe(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI with the stack's environment (IMGPIPE_BACKEND=aws, the names, the presets)."""
    return subprocess.run(
        [*IMGPIPE, *args], capture_output=True, text=True, timeout=180, check=False
    )


def versions(stack: Stack, record: ImageRecord) -> dict[str, str | None]:
    """Each rendition key's current S3 version: a key written again has a new one."""
    found = {r.key: stack.objects.head(r.key) for r in record.renditions}
    return {key: info.version_id if info else None for key, info in found.items()}


def rerender_jobs(stack: Stack) -> list[dict[str, Any]]:
    messages = stack.receive()
    assert all(json.loads(m["Body"])["type"] == "rerender" for m in messages)
    return messages


@pytest.fixture
def processed(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> list[ImageRecord]:
    """Two photos processed by the worker with thumb and medium."""
    use_presets(monkeypatch, THUMB, MEDIUM)
    stack.receive()  # the S3 test event
    for n, key in enumerate(KEYS):
        version = put_original(stack, key, imagegen.photo_jpeg(640 - 100 * n, 480))
        [note] = stack.notifications()
        assert stack.work([as_aws_sends(note, version, next_sequencer())]) == []
    records = [stack.record(key) for key in KEYS]
    assert all(r.status is Status.PROCESSED and len(r.renditions) == 4 for r in records)
    return records


def test_presets_added_changed_and_removed_through_sqs(
    stack: Stack, processed: list[ImageRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = {r.image_id: versions(stack, r) for r in processed}

    # GIVEN the workers now have a "small" preset too
    added = use_presets(monkeypatch, THUMB, MEDIUM, SMALL)
    # WHEN `imgpipe reprocess --stale --no-wait` runs THEN one job per record is in SQS
    result = imgpipe("reprocess", "--stale", "--no-wait")
    assert result.returncode == 0, result.stderr
    assert "checked 2 processed record(s): 2 stale, queued 2 re-render job(s)" in result.stdout
    jobs = rerender_jobs(stack)
    assert sorted(json.loads(m["Body"])["key"] for m in jobs) == KEYS
    # WHEN the worker handler runs them
    assert stack.work(jobs) == []
    # THEN only small.webp was written; the other renditions kept their S3 versions
    for old in processed:
        record = stack.record(old.key)
        assert record.status is Status.PROCESSED
        assert record.rendition_hash == added.rendition_hash()
        assert [r.name for r in record.renditions] == ["thumb"] * 2 + ["medium"] * 2 + ["small"]
        now = versions(stack, record)
        assert {k: v for k, v in now.items() if k in before[old.image_id]} == before[old.image_id]
        [small] = [r for r in record.renditions if r.name == "small"]
        assert small.format == "webp" and max(small.width, small.height) == 160
    # AND running it again finds nothing stale
    again = imgpipe("reprocess", "--stale", "--no-wait")
    assert "2 processed record(s): 0 stale, queued 0" in again.stdout
    assert stack.receive() == []

    # GIVEN medium's quality changes, WHEN the jobs run THEN only medium is written again
    middle = {r.key: versions(stack, stack.record(r.key)) for r in processed}
    use_presets(monkeypatch, THUMB, {**MEDIUM, "quality": {"jpeg": 95, "webp": 90}}, SMALL)
    assert "queued 2" in imgpipe("reprocess", "--stale", "--no-wait").stdout
    assert stack.work(rerender_jobs(stack)) == []
    for key, was in middle.items():
        now = versions(stack, stack.record(key))
        assert {k for k in was if now[k] != was[k]} == {k for k in was if "/medium." in k}

    # GIVEN thumb is removed, WHEN the jobs run THEN its objects are deleted
    fewer = use_presets(monkeypatch, {**MEDIUM, "quality": {"jpeg": 95, "webp": 90}}, SMALL)
    assert "queued 2" in imgpipe("reprocess", "--stale", "--no-wait").stdout
    assert stack.work(rerender_jobs(stack)) == []
    for old in processed:
        record = stack.record(old.key)
        assert {r.name for r in record.renditions} == {"medium", "small"}
        assert record.rendition_hash == fewer.rendition_hash()
        left = {i.key for i in stack.objects.list(f"renditions/{old.image_id}/")}
        assert left == {r.key for r in record.renditions}


def test_wait_polls_the_records_until_the_workers_are_done(
    stack: Stack, processed: list[ImageRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN new presets, and `reprocess --stale` waiting (the default) in the background
    use_presets(monkeypatch, THUMB, SMALL)
    waiting = subprocess.Popen(
        [*IMGPIPE, "reprocess", "--stale", "--timeout", "120"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        # WHEN the Lambda workers run the jobs it queued
        deadline = time.monotonic() + 60
        done = 0
        while done < 2 and time.monotonic() < deadline:
            jobs = stack.receive()
            if jobs:
                assert stack.work(jobs) == []
                done += len(jobs)
            time.sleep(0.2)
        # THEN the command sees every record fresh, prints the counts and succeeds
        out, err = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.communicate()
    assert waiting.returncode == 0, err
    assert "queued 2 re-render job(s)" in out
    assert "re-rendered 2, failed 0, gone 0, still stale 0" in out


def test_wait_times_out_when_the_workers_have_other_settings(
    stack: Stack, processed: list[ImageRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the CLI's presets differ from the workers' (not deployed yet)
    monkeypatch.setenv("IMGPIPE_RENDITIONS", json.dumps([THUMB]))
    result = imgpipe("reprocess", "--stale", "--timeout", "0")
    # THEN it says so, and fails
    assert result.returncode == 1
    assert "still stale 2" in result.stdout and "own settings" in result.stderr
