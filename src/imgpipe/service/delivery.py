"""The `/img` use case: an on-request result of an imgpipe image, read from the derived cache
or rendered once from the original and kept there.

    hit(path, accept)   a result answered before, from memory (service.hits), while its
                        image's record is unchanged; None: find() and read() or render()
    find(path, accept)  the URL parsed and its signature checked (core.img_url), its source
                        resolved to a record (core.derived), the format negotiated from
                        Accept where the URL names none (core.negotiate), and the cache
                        looked up at derived/{imageId}/{versionTag}/{hash}.{ext}
    read(found)         a hit: the cached bytes, or only their key where they are over the
                        deployment's inline limit (the route redirects to them)
    render(found)       a miss: rendered from the original by the Renderer (locally in the
                        rendering processes, under their limits), stored, answered; identical
                        requests in this process at once render once (single-flight); a
                        JPEG's 1/8 decode kept beside the results as its twin, and read by
                        the renders that need it instead of decoding again (engine/twin.py)
    drop_derived(...)   a delete, a reprocess or a new version removes the image's results

What it returns is plain values (Delivered); the route makes the HTTP answer of them.
"""

from __future__ import annotations

import hashlib
import logging
from typing import NamedTuple

from imgpipe.core import derived, negotiate
from imgpipe.core.complete import complete
from imgpipe.core.errors import (
    NotFoundError,
    ObjectNotFoundError,
    SigningKeyRequiredError,
    TooLargeError,
    TransientError,
)
from imgpipe.core.files import OpenFile
from imgpipe.core.formats import CONTENT_TYPES, EXTENSIONS, OutputFormat, sniff
from imgpipe.core.img_url import ImgUrl, parse_img_path, rendition_presets, sign_img_path
from imgpipe.core.keys import derived_key, derived_prefix, derived_twin_key
from imgpipe.core.model import ImageRecord, ObjectInfo
from imgpipe.core.transform import TransformRequest
from imgpipe.service.context import DeliveryOptions, ServiceContext
from imgpipe.service.hits import HitMemory, Remembered
from imgpipe.service.renditions import held
from imgpipe.service.singleflight import SingleFlight

log = logging.getLogger("imgpipe.service")
TWIN_TYPE = "application/octet-stream"


class Found(NamedTuple):
    """A request resolved: the image, the URL, what it is written as, where it is cached."""

    record: ImageRecord
    url: ImgUrl
    formats: tuple[OutputFormat, ...]  # one; several for format:best (the smallest is kept)
    key: str
    negotiated: bool  # the format came from Accept: the answer varies with it
    cached: ObjectInfo | None
    asked: tuple[str, str] = ("", "")  # (the path as sent, the Accept variant): hits' key


class Delivered(NamedTuple):
    """A result to answer with: its bytes (None: over the inline limit, fetch `key`)."""

    key: str
    content_type: str
    length: int
    etag: str  # strong, quoted: the stored object's content hash
    body: bytes | None


class Hit(NamedTuple):
    """A result from memory, and whether its format came from Accept (Vary)."""

    delivered: Delivered
    negotiated: bool


class Delivery:
    """GET /img/... (docs/api.md: The /img route)."""

    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx
        self._flight: SingleFlight[tuple[Delivered, bool]] = SingleFlight()
        self._presets = rendition_presets(ctx.options.render.renditions)
        self._options = ctx.options.delivery
        # What shapes a result besides its URL: a change of these settings files results anew.
        options = self._options
        decoded_with = options and (options.encoder, options.fast_shrink_on_load)
        made_with = (decoded_with, ctx.options.render.background)
        self._settings_tag = hashlib.sha256(repr(made_with).encode()).hexdigest()[:16]
        budget = self._options.memory_budget_bytes if self._options is not None else 0
        self._memory: HitMemory[Hit] = HitMemory(budget)

    @property
    def memory(self) -> HitMemory[Hit]:
        return self._memory

    @property
    def options(self) -> DeliveryOptions:
        if self._options is None:
            raise NotFoundError("on-request transforms are not configured here")
        return self._options

    def hit(self, path: str, accept: str | None) -> Hit | None:
        """The answer to a request answered before, from memory, if the image's record has
        not been written since (a stamp read, not the record); None: the long way."""
        asked = (path, negotiate.variant(accept))
        entry = self._memory.get(asked)
        if entry is None:
            return None
        if self._ctx.records.stamp(entry.image_id) != entry.stamp:
            self._memory.forget(asked)
            return None
        self._ctx.derived.read(entry.answer.delivered.key)  # its recency, for the budget
        self._ctx.metrics.incr("transforms", result="hit")
        return entry.answer

    def find(self, path: str, accept: str | None) -> Found:
        """The request for `path` (after /img, as sent) resolved and looked up in the cache:
        400 for a bad URL, 403 for a bad signature, 404 for a source that is not an image
        here, 409 for one not processed yet, 422 for one that failed."""
        opts = self.options
        url = parse_img_path(
            path,
            keys=opts.keys,
            unsafe=opts.unsafe,
            presets=self._presets,
            limits=opts.limits,
            signature_size=opts.signature_size,
        )
        record = self._ctx.record(derived.image_id_of(url.source))
        derived.check_servable(record)
        accept_variant = negotiate.variant(accept)
        has_alpha = bool(record.has_alpha)
        if url.format is None:
            formats: tuple[OutputFormat, ...] = (negotiate.choose(accept_variant, has_alpha),)
        elif url.format == "best":
            formats = negotiate.best_formats(accept_variant, has_alpha)
        else:
            formats = (url.format,)
        ext = EXTENSIONS[formats[0]] if len(formats) == 1 else "best-" + "-".join(formats)
        tag = derived.version_tag(record)
        options = f"{url.transform.canonical()}\x00{self._settings_tag}"
        key = derived_key(record.image_id, tag, options, ext)
        negotiated = url.format is None or url.format == "best"
        cached = self._ctx.objects.head(key)
        return Found(record, url, formats, key, negotiated, cached, (path, accept_variant))

    def signed_path(self, path: str) -> str:
        """`path` (`/{options}/{source}`) as a URL of this deployment takes it: signed with
        the first (key, salt) pair, or `/insecure` in front where unsigned URLs are taken;
        SigningKeyRequiredError (403) where neither (no key set, and unsigned URLs refused)."""
        opts = self.options
        if opts.keys:
            key, salt = opts.keys[0]
            return sign_img_path(path, key, salt, opts.signature_size)
        if opts.unsafe:
            return "/insecure" + path
        raise SigningKeyRequiredError(
            "no signing key is configured (transform.key, transform.salt); unsigned URLs are"
            " taken only on loopback without an API token"
        )

    def revalidated(self, found: Found) -> None:
        """The client holds the cached result already (304): it counts as a read."""
        self._ctx.derived.read(found.key)
        self._ctx.metrics.incr("transforms", result="hit")

    def read(self, found: Found) -> Delivered | None:
        """A cached result; None where it went (evicted) since find() saw it."""
        done = self._cached(found)
        if done is not None:
            self._ctx.metrics.incr("transforms", result="hit")
            self._remember(found, done)
        return done

    def _cached(self, found: Found) -> Delivered | None:
        info = found.cached
        if info is None:
            return None
        if not self._inline(info.size):
            self._ctx.derived.read(found.key)
            return Delivered(found.key, _stored_type(found, info), info.size, _etag(info), None)
        try:
            data = self._ctx.objects.get(found.key)
        except ObjectNotFoundError:
            return None
        if not complete(data):
            # Written without fsync and cut short by a power failure: rendered again, and
            # the new result takes its place.
            log.warning("a cached result is cut short: rendered again", extra={"key": found.key})
            return None
        self._ctx.derived.read(found.key)
        return Delivered(found.key, _content_type(found, data), len(data), _etag(info), data)

    def render(self, found: Found) -> Delivered:
        """The result rendered from the original and stored; an identical render under way in
        this process is waited for instead of repeated."""
        (delivered, rendered), ran = self._flight.run(found.key, lambda: self._render(found))
        result = ("miss" if rendered else "hit") if ran else "shared"
        self._ctx.metrics.incr("transforms", result=result)
        self._remember(found, delivered)
        return delivered

    def _remember(self, found: Found, done: Delivered) -> None:
        """Keep a small answer for hit(), stamped with the record it was made from."""
        if done.body is None or not found.asked[0] or not self._memory.fits(done.length):
            return
        record = found.record
        stamp = (record.revision, record.uploaded_at)
        hit = Hit(done, found.negotiated)
        entry = Remembered(record.image_id, stamp, hit, done.length)
        self._memory.put(found.asked, entry)

    def _render(self, found: Found) -> tuple[Delivered, bool]:
        """(the result, whether it was rendered: False where it was stored meanwhile)."""
        # An identical render may have finished between find() and this flight.
        done = self._cached(found._replace(cached=self._ctx.objects.head(found.key)))
        if done is not None:
            return done, False
        ctx, record = self._ctx, found.record
        # A twin is looked for, and one is kept, only where one may serve this render.
        twin_key = derived_twin_key(record.image_id, derived.version_tag(record))
        may_serve = self.options.twins and derived.twin_may_serve(record, found.url.transform)
        twin = self._twin(twin_key) if may_serve else None
        request = TransformRequest(
            found.url.transform,
            found.formats,
            self.options.encoder,
            ctx.options.render.background,
            ctx.options.render.limits,
            self.options.limits,
            self.options.fast_shrink_on_load,
            twin,
            keep_twin=may_serve,
        )
        # Opened without a head first: the record's version of the original, or 404.
        try:
            original = ctx.objects.open(record.key, version_id=record.version_id)
        except ObjectNotFoundError:
            raise NotFoundError(f"the original of image {record.image_id} is gone") from None
        with held(original):
            size = original.size if isinstance(original, OpenFile) else len(original)
            if size > ctx.options.max_bytes:  # the limit lowered since it was uploaded
                raise TooLargeError(f"{size} bytes; the limit is {ctx.options.max_bytes}")
            variant = ctx.renderer.transform(original, request)
        # Not durable: a result lost to a power failure is rendered again, and one cut short
        # is found on read (_cached), so a write does not wait for the disk.
        stored = ctx.objects.put(found.key, variant.data, variant.content_type, durable=False)
        ctx.derived.stored(found.key, stored.size)
        if variant.twin is not None:  # not durable either: a cut short twin is not read
            kept = ctx.objects.put(twin_key, variant.twin, TWIN_TYPE, durable=False)
            ctx.derived.stored(twin_key, kept.size)
        body = variant.data if self._inline(len(variant.data)) else None
        size = len(variant.data)
        return Delivered(found.key, variant.content_type, size, _etag(stored), body), True

    def _twin(self, key: str) -> bytes | None:
        """The image's twin, where the cache holds one (its results' recency goes for it)."""
        try:
            twin = self._ctx.objects.get(key)
        except ObjectNotFoundError:
            return None
        self._ctx.derived.read(key)
        return twin

    def _inline(self, size: int) -> bool:
        limit = self.options.inline_limit_bytes
        return limit is None or size <= limit


def drop_derived(ctx: ServiceContext, image_id: str) -> int:
    """Remove every cached result of `image_id` (its delete, a reprocess or a new version
    made them unreachable already: their version tag is no longer the record's); how many."""
    count = 0
    for info in ctx.objects.list(derived_prefix(image_id)):
        ctx.objects.delete(info.key)
        ctx.derived.dropped(info.key, info.size)
        count += 1
    return count


def drop_derived_quietly(ctx: ServiceContext, image_id: str) -> None:
    """drop_derived after a processing: a store that does not answer leaves the results to
    expire (they are unreachable already) rather than failing the job that committed."""
    try:
        drop_derived(ctx, image_id)
    except TransientError as exc:
        log.warning("cached results left to expire", extra={"imageId": image_id, "error": str(exc)})


def _etag(info: ObjectInfo) -> str:
    """Strong: the stored bytes' hash (sha256 locally, S3's ETag on AWS)."""
    return '"' + info.etag.strip('"') + '"'


def _content_type(found: Found, data: bytes) -> str:
    if len(found.formats) == 1:
        return CONTENT_TYPES[found.formats[0]]
    return CONTENT_TYPES[sniff(data[:64])]  # format:best: whichever was smallest


def _stored_type(found: Found, info: ObjectInfo) -> str:
    if len(found.formats) == 1:
        return CONTENT_TYPES[found.formats[0]]
    return info.content_type or "application/octet-stream"


__all__ = [
    "Delivered",
    "Delivery",
    "DeliveryOptions",
    "Found",
    "Hit",
    "drop_derived",
    "drop_derived_quietly",
]
