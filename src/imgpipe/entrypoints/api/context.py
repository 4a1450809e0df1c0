"""What the routers are given (ApiContext: the use cases, the links, the limits) and what
several of them do with it: show a record with its rendition links, name an upload's retry
prefix, refuse an id that cannot be an image's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request

from imgpipe.core.errors import NotFoundError
from imgpipe.core.keys import idempotent_prefix, is_image_id
from imgpipe.core.links import Links, SignedUploads
from imgpipe.core.model import ImageRecord
from imgpipe.entrypoints.api.auth import caller
from imgpipe.service import UseCases


@dataclass
class ApiContext:
    service: UseCases
    links: Links
    backend: str
    max_bytes: int  # the largest original an upload takes
    max_json_bytes: int  # the largest body of every other route
    max_distance: int  # GET /similar's default and largest maxDistance
    api_token: str | None = None
    max_list_limit: int = 100
    metrics_exposition: Callable[[], bytes] | None = None
    on_enqueued: Callable[[], None] = field(default=lambda: None)
    extra_routes: Callable[[FastAPI], None] | None = None
    # Makes Idempotency-Key's upload ids unguessable (local: the data folder's signing key).
    idempotency_secret: bytes = b""
    # The degraded parts of this server and why (local: its HealthBoard); None: always ok.
    problems: Callable[[], dict[str, str]] | None = None
    # Set where the API takes the uploads its upload URLs point at (local: PUT /upload/{key}).
    signed_uploads: SignedUploads | None = None
    # /img: renders (cache misses) a second per client, and at once; 0: no limit.
    miss_rate_per_s: float = 0.0
    miss_burst: int = 1

    def present(self, record: ImageRecord, request: Request) -> dict[str, Any]:
        """The record as the API shows it: its public fields, each rendition with its URL."""
        body = record.public()
        for r in body["renditions"]:
            filename = r["key"].rsplit("/", 1)[-1]
            r["url"] = self.links.rendition_url(
                record.image_id, r["key"], filename, base_url(request), r.get("versionId")
            )
        return body

    def retry_prefix(self, request: Request, route: str, idempotency_key: str | None) -> str | None:
        """The `uploads/{id}/` an Idempotency-Key names for this caller and route."""
        if idempotency_key is None:
            return None
        return idempotent_prefix(self.idempotency_secret, caller(request), route, idempotency_key)


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def known_id(image_id: str) -> str:
    """`image_id`, or NotFoundError (404) when it cannot be an image's id at all."""
    if not is_image_id(image_id):
        raise NotFoundError(f"no image {image_id}")
    return image_id
