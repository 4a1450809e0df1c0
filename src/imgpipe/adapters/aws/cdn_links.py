"""URLs on the stack's CloudFront distribution: a rendition's, pinned to its S3 version, and an
/img path's; public, or CloudFront signed URLs (canned policy) for stacks whose images are
private.

A rendition's URL is `{base}/renditions/{imageId}/{name}.{ext}?versionId={its S3 VersionId}`:
the distribution serves that exact version from the bucket (Origin Access Control), so the
URL's bytes never change and CloudFront and browsers may keep them for a year. A reprocess
writes a new version, hence a new URL; nothing needs an invalidation (docs/aws.md, "At the
edge").

A signed URL's expiry is rounded up to the hour: every read of a record within that hour gives
the same URL, so a browser's cache keyed on it still hits.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import quote

from botocore.signers import CloudFrontSigner

from imgpipe.adapters.aws import rsa_sha1
from imgpipe.core.keys import validate_key

_EXPIRY_STEP_S = 3600
_SIGNED_KEPT = 8192  # URLs: about a hundred bytes each


class CdnUrls:
    """The URLs of one distribution; `signer` set when they must be CloudFront-signed."""

    def __init__(
        self,
        base_url: str,
        signer: CloudFrontSigner | None = None,
        signed_ttl_s: int = 24 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.signer = signer
        self.signed_ttl_s = signed_ttl_s
        self.clock = clock

    @classmethod
    def signed(
        cls, base_url: str, key_pair_id: str, private_key_pem: str, signed_ttl_s: int
    ) -> CdnUrls:
        """URLs signed with the key group's key `key_pair_id`, whose private half is the PEM
        (RsaKeyError when it is not an RSA private key)."""
        key = rsa_sha1.load_pem(private_key_pem)
        signer = CloudFrontSigner(key_pair_id, lambda message: rsa_sha1.sign(key, message))
        return cls(base_url, signer, signed_ttl_s)

    def rendition(self, key: str, version_id: str) -> str:
        """The URL of version `version_id` of the rendition at `key`."""
        validate_key(key)
        return self._url(f"/{quote(key)}?versionId={quote(version_id, safe='')}")

    def path(self, path: str) -> str:
        """The URL of a path of the distribution (an /img path, as the API signed it)."""
        return self._url(path)

    def _url(self, path: str) -> str:
        url = self.base_url + path
        if self.signer is None:
            return url
        return self._signed(url, self.expiry())

    @functools.lru_cache(maxsize=_SIGNED_KEPT)  # noqa: B019 (one CdnUrls per process)
    def _signed(self, url: str, expiry: datetime) -> str:
        """A URL signed until `expiry`; kept, since the expiry stays the same for an hour and
        an RSA signature in plain Python takes milliseconds (docs/aws.md, "At the edge")."""
        assert self.signer is not None
        return self.signer.generate_presigned_url(url, date_less_than=expiry)

    def expiry(self) -> datetime:
        """At least signed_ttl_s from now, rounded up to the hour."""
        at = math.ceil((self.clock() + self.signed_ttl_s) / _EXPIRY_STEP_S) * _EXPIRY_STEP_S
        return datetime.fromtimestamp(at, UTC)
