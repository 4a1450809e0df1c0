"""Upload targets and rendition links on AWS: presigned S3 POST and GET, signed by the API's role,
or versioned CloudFront URLs where the stack has a distribution.

Clients upload straight to S3 (the API never carries the bytes) and fetch renditions from S3
through short-lived presigned GETs, to which the API redirects; the API only signs. With a
distribution (aws.cdn_base_url), a rendition recorded with its S3 version gets that version's
CDN URL instead (adapters.aws.cdn_links): the same for every read, so browsers and CloudFront
cache it. No link of ours is verified by the API itself, so `verify_rendition` is always False
(API Gateway authenticates the routes; CloudFront checks its own signed URLs).
"""

from __future__ import annotations

from imgpipe.adapters.aws.cdn_links import CdnUrls
from imgpipe.adapters.aws.s3_store import S3ObjectStore
from imgpipe.core.links import RenditionAnswer, RenditionRedirect, UploadTarget
from imgpipe.core.model import iso


class S3Links:
    """The Links of an AWS deployment."""

    def __init__(self, objects: S3ObjectStore, ttl_s: int, cdn: CdnUrls | None = None) -> None:
        self.objects = objects
        self.ttl_s = ttl_s
        self.cdn = cdn

    def upload_target(
        self, key: str, content_type: str, max_bytes: int, base_url: str, size: int | None = None
    ) -> UploadTarget:
        """A declared size gets a presigned PUT, bound to that length and good once (S3's
        conditional write); without one, a presigned POST whose policy bounds the length
        (S3 has no conditional POST: such a URL can be used again until it expires)."""
        if size is not None:
            url, headers, expires = self.objects.presigned_put(key, content_type, size, self.ttl_s)
            return UploadTarget(url=url, method="PUT", headers=headers, expires_at=iso(expires))
        url, fields, expires = self.objects.presigned_post(key, content_type, max_bytes, self.ttl_s)
        return UploadTarget(url=url, method="POST", fields=fields, expires_at=iso(expires))

    def rendition_url(
        self, image_id: str, key: str, filename: str, base_url: str, version_id: str | None = None
    ) -> str:
        """The version's CDN URL; a presigned GET without a distribution, or for a rendition
        recorded before versions were (its CDN URL could not pin what it serves)."""
        return self._rendition(key, version_id)

    def verify_rendition(self, key: str, expires: int, signature: str) -> bool:
        return False

    def rendition_answer(self, key: str, version_id: str | None = None) -> RenditionAnswer:
        """A redirect to the rendition's URL; briefly cacheable, as a reprocess changes it."""
        return RenditionRedirect(
            self._rendition(key, version_id), {"Cache-Control": "private, max-age=60"}
        )

    def _rendition(self, key: str, version_id: str | None) -> str:
        if self.cdn is not None and version_id:
            return self.cdn.rendition(key, version_id)
        return self.objects.presigned_get(key, self.ttl_s)

    def img_url(self, path: str, base_url: str) -> str:
        return self.cdn.path(path) if self.cdn is not None else base_url + path

    def object_url(self, key: str, content_type: str) -> str:
        """A presigned GET of the object, answered with `content_type` whatever the object was
        stored with (the signature covers it: the URL cannot be changed to serve another)."""
        return self.objects.presigned_get(key, self.ttl_s, content_type)
