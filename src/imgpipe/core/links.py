"""The links port: where a client sends an upload, where it fetches a rendition, and what a
request for a rendition is answered with.

This is what differs between the deployments' APIs: locally the server signs its own URLs
(HMAC over the data folder's key), takes the uploads and serves the renditions' bytes; on AWS
S3 presigns both and the API redirects to it, or, with a CloudFront distribution in front,
the renditions are versioned (cacheable) CDN URLs. The routes speak only these plain values, so
neither choice (nor any HTTP framework) reaches the core.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol


@dataclass(frozen=True)
class UploadTarget:
    """Where and how to send one upload: a PUT of the body, or a form POST with `fields`."""

    url: str
    method: Literal["PUT", "POST"]
    expires_at: str
    fields: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RenditionBytes:
    """A rendition served by the API itself: its bytes, with these headers."""

    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class RenditionRedirect:
    """A rendition fetched from elsewhere: the client is sent to `url`, with these headers."""

    url: str
    headers: dict[str, str]


RenditionAnswer = RenditionBytes | RenditionRedirect


class Links(Protocol):
    """How this deployment hands out upload URLs and rendition links."""

    def upload_target(
        self, key: str, content_type: str, max_bytes: int, base_url: str, size: int | None = None
    ) -> UploadTarget:
        """Where to send one upload of `key`: once, of at most `max_bytes`, and of exactly
        `size` bytes when the client declared it."""
        ...

    def rendition_url(
        self, image_id: str, key: str, filename: str, base_url: str, version_id: str | None = None
    ) -> str:
        """A record's link to its rendition at `key`, written as version `version_id` of the
        object (None: a rendition recorded before versions were)."""
        ...

    def verify_rendition(self, key: str, expires: int, signature: str) -> bool: ...

    def rendition_answer(self, key: str, version_id: str | None = None) -> RenditionAnswer:
        """What a request for the rendition at `key` (version `version_id`) gets; raises
        ObjectNotFoundError when the bytes are read here and are gone."""
        ...

    def img_url(self, path: str, base_url: str) -> str:
        """Where a client GETs the /img `path` (the API's base URL, or the CDN's in front)."""
        ...

    def object_url(self, key: str, content_type: str) -> str:
        """A short-lived URL that GETs the stored object at `key` (a cached on-request result
        too large to answer inline: the API redirects to it). Where the API always answers
        inline (locally), there is none: ProcessingError."""
        ...


class SignedUploads(Protocol):
    """The uploads of a deployment whose API takes them itself (locally, PUT /upload/{key}):
    it checks the URL it signed."""

    def verify_upload(
        self,
        key: str,
        content_type: str,
        max_bytes: int,
        expires: int,
        signature: str,
        size: int | None = None,
    ) -> bool: ...
