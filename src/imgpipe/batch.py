"""`imgpipe process`: one file in, renditions and record.json out, no server and no store."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from imgpipe.core import lifecycle
from imgpipe.core.errors import ImageError, ImgpipeError
from imgpipe.core.model import ObjectEvent, Rendition, utcnow
from imgpipe.core.rendering import RenderOptions
from imgpipe.core.rendition_identity import rendition_hash, spec_hashes
from imgpipe.engine import render

FILE_BUCKET = "file"


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def process_file(path: str, out_dir: str, options: RenderOptions) -> dict[str, Any]:
    """Render one file into `out_dir`; returns its record (PROCESSED or FAILED), never raises
    for a bad image."""
    source = Path(path)
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    now = utcnow()
    event = ObjectEvent(key=str(source.resolve()), sequencer="1")
    claimed = lifecycle.new_version(event, FILE_BUCKET, now).model_copy(update={"attempts": 1})
    started = time.perf_counter()
    try:
        data = source.read_bytes()
        result = render(data, options)
        metadata = result.metadata  # validated before any file is written
    except ImageError as exc:
        record = lifecycle.failed(
            claimed, exc.code, str(exc), utcnow(), round((time.perf_counter() - started) * 1000)
        )
    except (OSError, ImgpipeError) as exc:
        record = lifecycle.failed(
            claimed,
            "not_found" if isinstance(exc, FileNotFoundError) else "internal",
            str(exc),
            utcnow(),
        )
    else:
        hashes = spec_hashes(options.renditions, options.background, options.metadata.strip_exif)
        renditions = []
        for r in result.renditions:
            filename = f"{r.name}.{r.ext}"
            _write_atomic(target / filename, r.data)
            renditions.append(
                Rendition(
                    name=r.name,
                    format=r.format,
                    key=filename,
                    width=r.width,
                    height=r.height,
                    bytes=len(r.data),
                    url=filename,
                    specHash=hashes.get(r.name),
                )
            )
        record = lifecycle.processed(
            claimed,
            metadata,
            renditions,
            utcnow(),
            round((time.perf_counter() - started) * 1000),
            rendition_hash=rendition_hash(hashes),
        )
    doc = record.public()
    _write_atomic(
        target / "record.json", json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8")
    )
    return doc
