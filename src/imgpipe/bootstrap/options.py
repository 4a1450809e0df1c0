"""What the wiring shares: the data folder's layout, and the use cases' options taken from
the settings as plain values."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imgpipe.config import Settings

if TYPE_CHECKING:
    from imgpipe.service import ServiceOptions

STATE_DIR = ".imgpipe"
DB_NAME = "imgpipe.db"


def service_options(
    settings: Settings, *, store_notifies: bool = False, renders_at_once: int | None = None
) -> ServiceOptions:
    """What the use cases take from the settings, as plain values: `store_notifies` when the
    object store queues its new objects itself (S3's notifications); `renders_at_once` to
    gate leases by the rendering processes free (ServiceOptions)."""
    from imgpipe.core.lifecycle import Preset
    from imgpipe.service import ServiceOptions

    spec_hashes = settings.spec_hashes()
    return ServiceOptions(
        render=settings.render_options(),
        presets=tuple(
            Preset(spec.name, spec_hashes[spec.name], tuple(spec.formats))
            for spec in settings.renditions
        ),
        rendition_hash=settings.rendition_hash(),
        lease_s=settings.lease_s,
        max_bytes=settings.limits.max_bytes,
        max_distance=settings.similarity.max_distance,
        store_notifies=store_notifies,
        renders_at_once=renders_at_once,
    )
