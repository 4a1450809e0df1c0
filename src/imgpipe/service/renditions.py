"""From an original to its finished record: the render, the renditions' writes, the record's
final state. One path for a job, a re-render and `imgpipe process` (batch.py).

Where the renditions go is the caller's: a job writes `renditions/{imageId}/...` to the object
store, `imgpipe process` writes `<preset>.<ext>` into its output folder.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import NamedTuple, Protocol

from imgpipe.core import lifecycle
from imgpipe.core.errors import ImageError
from imgpipe.core.files import OpenFile
from imgpipe.core.formats import CONTENT_TYPES
from imgpipe.core.model import ImageMetadata, ImageRecord, ObjectInfo, Rendition
from imgpipe.core.ports import ObjectStore, Renderer
from imgpipe.core.rendering import RenderOptions, RenderResult

# (preset name, file extension) -> the key its rendition is written at
KeyFor = Callable[[str, str], str]


class RenditionSink(Protocol):
    """Where renditions are written: an object store, or `imgpipe process`'s output folder."""

    def put(self, key: str, body: bytes, content_type: str) -> object: ...


class Rendered(NamedTuple):
    """An image that rendered: its validated metadata and its renditions, written."""

    metadata: ImageMetadata
    renditions: list[Rendition]


def held(original: object) -> contextlib.AbstractContextManager[object]:
    """Closes an open original when the block ends; bytes (or an error) need nothing."""
    return original if isinstance(original, OpenFile) else contextlib.nullcontext()


def render(
    renderer: Renderer, original: bytes | OpenFile, options: RenderOptions
) -> RenderResult | ImageError:
    """The render, or the image error that fails the record; a transient error raises."""
    try:
        return renderer.render(original, options)
    except ImageError as exc:
        return exc


def write_result(
    sink: RenditionSink,
    outcome: RenderResult | ImageError,
    key_for: KeyFor,
    presets: Sequence[lifecycle.Preset],
) -> Rendered | ImageError:
    """The metadata, validated before any file is written, and the renditions, written; or
    the image error that fails the record (the render's, or a refused metadata value)."""
    if isinstance(outcome, ImageError):
        return outcome
    try:
        metadata = outcome.metadata
        return Rendered(metadata, put_renditions(sink, outcome, key_for, presets))
    except ImageError as exc:
        return exc


def put_renditions(
    sink: RenditionSink,
    result: RenderResult,
    key_for: KeyFor,
    presets: Sequence[lifecycle.Preset],
) -> list[Rendition]:
    """Write each encoded rendition; what the record lists of them (with its preset's
    specHash, so that a later change of that preset shows, and the version the store wrote,
    which a CDN URL pins)."""
    spec_hashes = {p.name: p.spec_hash for p in presets}
    renditions: list[Rendition] = []
    for r in result.renditions:
        key = key_for(r.name, r.ext)
        written = sink.put(key, r.data, CONTENT_TYPES[r.format])
        renditions.append(
            Rendition(
                name=r.name,
                format=r.format,
                key=key,
                width=r.width,
                height=r.height,
                bytes=len(r.data),
                versionId=written.version_id if isinstance(written, ObjectInfo) else None,
                specHash=spec_hashes.get(r.name),
            )
        )
    return renditions


def drop_renditions(
    objects: ObjectStore, old: Iterable[Rendition], keep: Iterable[Rendition]
) -> None:
    """Delete the renditions of `old` that `keep` no longer lists."""
    kept = {r.key for r in keep}
    for r in old:
        if r.key not in kept:
            objects.delete(r.key)


def finished(
    claimed: ImageRecord,
    outcome: Rendered | ImageError,
    now: datetime,
    duration_ms: int,
    rendition_hash: str,
) -> ImageRecord:
    """The claimed record as the outcome leaves it: PROCESSED with its renditions, or FAILED
    with the image error's code."""
    if isinstance(outcome, ImageError):
        return lifecycle.failed(
            claimed, outcome.code, str(outcome) or outcome.code, now, duration_ms
        )
    return lifecycle.processed(
        claimed,
        outcome.metadata,
        outcome.renditions,
        now,
        duration_ms,
        rendition_hash=rendition_hash,
    )
