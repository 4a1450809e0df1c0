"""What the wiring shares: the data folder's layout, and the use cases' options taken from
the settings as plain values."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from imgpipe.config import Settings

if TYPE_CHECKING:
    from imgpipe.service import DeliveryOptions, ServiceOptions

STATE_DIR = ".imgpipe"
DB_NAME = "imgpipe.db"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def delivery_options(
    settings: Settings,
    *,
    unsafe_allowed: bool,
    inline_limit_bytes: int | None = None,
    hits_in_memory: bool = False,
) -> DeliveryOptions:
    """The /img route's options. Unsigned URLs (imgproxy's unsafe mode) only where the
    deployment allows them (`unsafe_allowed`: locally, a server on loopback without an API
    token) and no key is set; `inline_limit_bytes`: results over it are redirected to;
    `hits_in_memory`: small results kept in memory (transform.memory_cache_mb), for a
    long-lived server (a Lambda's memory is sized for its renders)."""
    from imgpipe.service import DeliveryOptions

    transform = settings.transform
    keys = transform.signing_keys()
    return DeliveryOptions(
        encoder=transform.encoder(),
        keys=keys,
        unsafe=unsafe_allowed and not keys,
        signature_size=transform.signature_size,
        limits=transform.limits(),
        inline_limit_bytes=inline_limit_bytes,
        fast_shrink_on_load=transform.fast_shrink_on_load,
        twins=transform.twins,
        # never more than the derived cache keeps (0 there: results are not kept at all)
        memory_budget_bytes=min(transform.memory_cache_mb, transform.cache_budget_mb) * 1024 * 1024
        if hits_in_memory
        else 0,
    )


def local_unsafe_allowed(settings: Settings) -> bool:
    """Whether the local server may take unsigned /img URLs: on loopback, without a token."""
    return is_loopback(settings.server.host) and settings.server.api_token is None


def service_options(
    settings: Settings,
    *,
    store_notifies: bool = False,
    renders_at_once: int | None = None,
    delivery: DeliveryOptions | None = None,
) -> ServiceOptions:
    """What the use cases take from the settings, as plain values: `store_notifies` when the
    object store queues its new objects itself (S3's notifications); `renders_at_once` to
    gate leases by the rendering processes free (ServiceOptions); `delivery`: the /img
    route's (delivery_options; by default no unsigned URLs and always inline)."""
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
        delivery=delivery or delivery_options(settings, unsafe_allowed=False),
    )
