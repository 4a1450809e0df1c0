"""Watches the uploads folder: files dropped or removed there become queue events.

A change whose handling fails (the database locked or read-only, say) is tried again, with
backoff, until it succeeds: a dropped file must not wait for the next start's backfill. A
folder that appears is looked into, since files moved in with it may come before the watch
on it does.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchfiles import Change, watch

from imgpipe.core.keys import is_upload_key
from imgpipe.core.model import ObjectInfo

log = logging.getLogger("imgpipe.watcher")

RESTART_S = 5.0
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 30.0


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
        # Changes to try again: (change, path) -> (when, the delay that led there).
        self._retries: dict[tuple[Change, Path], tuple[float, float]] = {}

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
            yield_on_timeout=True,  # an empty set each timeout: the moment to retry
            recursive=True,
        ):
            for change, raw in changes:
                self._try(change, Path(raw), RETRY_FIRST_S)
            self._retry_due()

    def _try(self, change: Change, path: Path, delay_s: float) -> None:
        try:
            self.apply(change, path)
            self._retries.pop((change, path), None)
        except Exception:
            log.exception(
                "could not handle a change in the uploads folder; trying again",
                extra={"path": str(path), "retryInS": delay_s},
            )
            self._retries[(change, path)] = (time.monotonic() + delay_s, delay_s)

    def _retry_due(self) -> None:
        now = time.monotonic()
        due = [(key, delay) for key, (when, delay) in self._retries.items() if when <= now]
        for (change, path), delay in due:
            self._try(change, path, min(delay * 2, RETRY_MAX_S))

    def apply(self, change: Change, path: Path) -> None:
        if change == Change.added and path.is_dir() and not path.is_symlink():
            for inner in sorted(path.rglob("*")):  # moved in with the folder, unseen
                if inner.is_file():
                    self.apply(Change.added, inner)
            return
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
