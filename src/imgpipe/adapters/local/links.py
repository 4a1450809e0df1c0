"""Upload URLs and rendition links of the local server, signed with the data folder's HMAC key.

An upload URL points at the server's own `PUT /upload/{key}`, which checks it (verify_upload);
a rendition link points at the server's `GET /images/{id}/renditions/{filename}`, signed only
when the API wants a token (without one, every route is open anyway), and the server answers
it with the rendition's bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote, urlencode

from imgpipe.core import signing
from imgpipe.core.errors import ProcessingError
from imgpipe.core.links import RenditionAnswer, RenditionBytes, UploadTarget
from imgpipe.core.ports import ObjectStore


class LocalLinks:
    """The Links (and SignedUploads) of `imgpipe serve`."""

    def __init__(self, objects: ObjectStore, key: bytes, ttl_s: int, sign_renditions: bool) -> None:
        self.objects = objects
        self.key = key
        self.ttl_s = ttl_s
        self.sign_renditions = sign_renditions

    def upload_target(
        self, key: str, content_type: str, max_bytes: int, base_url: str, size: int | None = None
    ) -> UploadTarget:
        expires = signing.expiry(self.ttl_s)
        sig = signing.sign(self.key, *_upload_signed(expires, key, content_type, max_bytes, size))
        query: dict[str, str | int] = {
            "expires": expires,
            "contentType": content_type,
            "maxBytes": max_bytes,
        }
        if size is not None:
            query["size"] = size
        query["signature"] = sig
        return UploadTarget(
            url=f"{base_url}/upload/{quote(key, safe='/')}?{urlencode(query)}",
            method="PUT",
            headers={"Content-Type": content_type},
            expires_at=_iso_epoch(expires),
        )

    def verify_upload(
        self,
        key: str,
        content_type: str,
        max_bytes: int,
        expires: int,
        signature: str,
        size: int | None = None,
    ) -> bool:
        # hmac.compare_digest raises on non-ASCII text: a 500 that schemathesis found
        return signature.isascii() and signing.verify(
            self.key,
            signature,
            expires,
            *_upload_signed(expires, key, content_type, max_bytes, size)[1:],
        )

    def rendition_url(
        self, image_id: str, key: str, filename: str, base_url: str, version_id: str | None = None
    ) -> str:
        url = f"{base_url}/images/{image_id}/renditions/{filename}"
        if not self.sign_renditions:
            return url
        expires = signing.expiry(self.ttl_s)
        sig = signing.sign(self.key, str(expires), "GET", key)
        return f"{url}?{urlencode({'expires': expires, 'signature': sig})}"

    def verify_rendition(self, key: str, expires: int, signature: str) -> bool:
        return signature.isascii() and signing.verify(self.key, signature, expires, "GET", key)

    def rendition_answer(self, key: str, version_id: str | None = None) -> RenditionAnswer:
        """The current bytes: the record names the rendition written last (its version
        serves no purpose here: the server answers no cache but its own)."""
        return RenditionBytes(self.objects.get(key), {"Cache-Control": "private, max-age=300"})

    def img_url(self, path: str, base_url: str) -> str:
        return base_url + path

    def object_url(self, key: str, content_type: str) -> str:
        """None: the local server answers every on-request result inline (its wiring sets no
        inline limit), so it never redirects to an object."""
        raise ProcessingError(f"the local server answers {key!r} inline; it has no object URL")


def _upload_signed(
    expires: int, key: str, content_type: str, max_bytes: int, size: int | None
) -> tuple[str, ...]:
    """What an upload URL's signature covers; a declared size is bound into it."""
    fields = (str(expires), "PUT", key, content_type, str(max_bytes))
    return fields if size is None else (*fields, f"size={size}")


def _iso_epoch(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
