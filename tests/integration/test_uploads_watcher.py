"""The uploads watcher's thread outlives a watch that fails: it starts watching again."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from imgpipe.adapters.local.watcher import UploadsWatcher
from imgpipe.core.errors import StoreUnavailableError
from imgpipe.core.model import ObjectInfo


def test_a_watch_that_cannot_start_is_tried_again_until_it_can(tmp_path: Path) -> None:
    # GIVEN an uploads folder that cannot exist yet (a file is in the way of its parent)
    blocker = tmp_path / "data"
    blocker.write_bytes(b"not a folder")
    uploads = blocker / "uploads"
    seen: list[str] = []
    arrived = threading.Event()

    def created(info: ObjectInfo) -> None:
        seen.append(info.key)
        arrived.set()

    watcher = UploadsWatcher(
        uploads,
        key_for=lambda path: "uploads/" + Path(path).name,
        head=lambda key: ObjectInfo(key=key, size=1, etag="e"),
        on_created=created,
        on_removed=lambda key: None,
        restart_s=0.1,
    )
    watcher.start()
    try:
        # WHEN the watch fails, and later the folder can be made
        assert watcher.ready.wait(5)
        blocker.unlink()
        blocker.mkdir()
        # THEN the thread still runs, watches the folder, and a dropped file is seen
        for _ in range(100):
            if uploads.is_dir():
                break
            arrived.wait(0.1)
        assert uploads.is_dir()
        for attempt in range(20):
            (uploads / f"photo-{attempt}.jpg").write_bytes(b"x")
            if arrived.wait(0.5):
                break
        assert seen and seen[0].startswith("uploads/photo-")
    finally:
        watcher.stop()


def watching(uploads: Path, on_created: Callable[[ObjectInfo], None]) -> UploadsWatcher:
    watcher = UploadsWatcher(
        uploads,
        key_for=lambda path: "uploads/" + Path(path).relative_to(uploads).as_posix(),
        head=lambda key: ObjectInfo(key=key, size=1, etag="e"),
        on_created=on_created,
        on_removed=lambda key: None,
    )
    watcher.start()
    assert watcher.ready.wait(5)
    time.sleep(0.3)  # the watch itself starts a moment after the thread
    return watcher


def test_a_dropped_file_whose_acceptance_fails_is_accepted_once_it_can_be(
    tmp_path: Path,
) -> None:
    # GIVEN a database that refuses the first two acceptances (locked, say)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    accepted: list[str] = []
    failures = [StoreUnavailableError("database is locked")] * 2

    def created(info: ObjectInfo) -> None:
        if failures:
            raise failures.pop()
        accepted.append(info.key)

    watcher = watching(uploads, created)
    try:
        # WHEN a file is dropped THEN it is accepted in the end, without a restart
        (uploads / "photo.jpg").write_bytes(b"x")
        deadline = time.monotonic() + 20
        while not accepted and time.monotonic() < deadline:
            time.sleep(0.1)
        assert accepted == ["uploads/photo.jpg"]
        assert failures == []
    finally:
        watcher.stop()


def test_files_moved_in_with_a_new_folder_are_seen(tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    accepted: list[str] = []
    watcher = watching(uploads, lambda info: accepted.append(info.key))
    try:
        # GIVEN a folder of files made elsewhere WHEN it is moved into uploads/ at once
        outside = tmp_path / "batch"
        (outside / "deep").mkdir(parents=True)
        (outside / "a.jpg").write_bytes(b"a")
        (outside / "deep" / "b.jpg").write_bytes(b"b")
        outside.rename(uploads / "batch")
        # THEN each file in it is seen
        deadline = time.monotonic() + 10
        while len(set(accepted)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert set(accepted) == {"uploads/batch/a.jpg", "uploads/batch/deep/b.jpg"}
    finally:
        watcher.stop()
