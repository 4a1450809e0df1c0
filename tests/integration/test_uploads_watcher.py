"""The uploads watcher's thread outlives a watch that fails: it starts watching again."""

from __future__ import annotations

import threading
from pathlib import Path

from imgpipe.adapters.local.watcher import UploadsWatcher
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
