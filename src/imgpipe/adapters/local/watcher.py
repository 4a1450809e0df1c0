"""Watches the uploads folder: files dropped or removed there become queue events."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from watchfiles import Change, watch

from imgpipe.core.keys import is_upload_key
from imgpipe.core.model import ObjectInfo

log = logging.getLogger("imgpipe.watcher")

RESTART_S = 5.0


class UploadsWatcher:
    """Runs watchfiles in a thread; `on_created(info)` and `on_removed(key)` do the rest."""

    def __init__(
        self,
        uploads_dir: Path,
        key_for: Callable[[Path], str],
        head: Callable[[str], ObjectInfo | None],
        on_created: Callable[[ObjectInfo], object],
        on_removed: Callable[[str], object],
        restart_s: float = RESTART_S,
    ) -> None:
        self.uploads_dir = uploads_dir
        self.restart_s = restart_s
        self._key_for = key_for
        self._head = head
        self._on_created = on_created
        self._on_removed = on_removed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="imgpipe-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        """Watch until stop(); should the watch itself fail (the folder removed, the
        system's inotify watches exhausted), start it again after a pause, for good."""
        self.ready.set()
        while not self._stop.is_set():
            with contextlib.suppress(OSError):  # if it cannot be made, watch() says why
                self.uploads_dir.mkdir(parents=True, exist_ok=True)
            try:
                self._watch()
            except Exception:
                log.exception("watching the uploads folder failed; starting again")
            if self._stop.wait(self.restart_s):
                return

    def _watch(self) -> None:
        for changes in watch(
            self.uploads_dir,
            stop_event=self._stop,
            debounce=400,
            step=100,
            rust_timeout=500,
            yield_on_timeout=False,
            recursive=True,
        ):
            for change, raw in changes:
                try:
                    self.apply(change, Path(raw))
                except Exception:
                    log.exception(
                        "could not handle a change in the uploads folder", extra={"path": raw}
                    )

    def apply(self, change: Change, path: Path) -> None:
        try:
            key = self._key_for(path)
        except ValueError:
            return  # not a path the store maps to a key
        if not is_upload_key(key):
            return
        if change == Change.deleted:
            self._on_removed(key)
            return
        info = self._head(key)
        if info is not None:
            self._on_created(info)
