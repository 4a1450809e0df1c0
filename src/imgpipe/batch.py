"""`imgpipe process`: one file in, renditions and record.json out, no server and no store.

The file takes the service's own path from render to record (service.renditions): the same
render, the same renditions written (here as `<preset>.<ext>` into an output folder), the same
final record.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from imgpipe.core import lifecycle
from imgpipe.core.errors import ImageError, ImgpipeError
from imgpipe.core.model import ObjectEvent, utcnow
from imgpipe.engine import InProcessRenderer
from imgpipe.service import ServiceOptions
from imgpipe.service.renditions import Rendered, finished, render, write_result

FILE_BUCKET = "file"
RECORD_NAME = "record.json"


class OutputFolder:
    """A folder that takes files by name, each written whole (a temp file, then a rename):
    where `imgpipe process` writes one image's renditions and record."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path

    def put(self, key: str, body: bytes, content_type: str) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(body)
            os.replace(tmp, self.path / key)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _file_name(name: str, ext: str) -> str:
    return f"{name}.{ext}"


def _linked(outcome: Rendered | ImageError) -> Rendered | ImageError:
    """record.json links each rendition by its file name, beside it in the folder."""
    if isinstance(outcome, ImageError):
        return outcome
    linked = [r.model_copy(update={"url": r.key}) for r in outcome.renditions]
    return outcome._replace(renditions=linked)


def process_file(path: str, out_dir: str, options: ServiceOptions) -> dict[str, Any]:
    """Render one file into `out_dir`; returns its record (PROCESSED or FAILED), never raises
    for a bad image."""
    source = Path(path)
    folder = OutputFolder(Path(out_dir))
    event = ObjectEvent(key=str(source.resolve()), sequencer="1")
    claimed = lifecycle.new_version(event, FILE_BUCKET, utcnow()).model_copy(update={"attempts": 1})
    started = time.perf_counter()
    try:
        outcome = render(InProcessRenderer(), source.read_bytes(), options.render)
    except (OSError, ImgpipeError) as exc:  # unreadable, or a render that could not run
        record = lifecycle.failed(
            claimed,
            "not_found" if isinstance(exc, FileNotFoundError) else "internal",
            str(exc),
            utcnow(),
        )
    else:
        written = _linked(write_result(folder, outcome, _file_name, options.presets))
        elapsed_ms = round((time.perf_counter() - started) * 1000)
        record = finished(claimed, written, utcnow(), elapsed_ms, options.rendition_hash)
    doc = record.public()
    body = json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8")
    folder.put(RECORD_NAME, body, "application/json")
    return doc
