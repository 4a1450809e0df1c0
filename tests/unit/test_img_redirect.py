"""A result over the deployment's inline limit (AWS: Lambda's 6 MB response) is answered with
a 307 to the links port's URL of the stored object, hit or miss; one under it inline. Over
the in-memory fakes, with a Links whose object URL a test can recognise."""

from __future__ import annotations

import dataclasses
import io

from fastapi.testclient import TestClient
from PIL import Image

import imagegen
from conftest import drain
from fakes import InMemoryJobQueue, InMemoryMetadataStore, InMemoryObjectStore
from imgpipe.bootstrap.options import delivery_options, service_options
from imgpipe.config import Settings
from imgpipe.core.links import RenditionAnswer, RenditionRedirect, UploadTarget
from imgpipe.core.ports import NullMetrics
from imgpipe.engine import InProcessRenderer
from imgpipe.entrypoints.api import ApiContext, create_app
from imgpipe.service import UseCases


@dataclasses.dataclass
class Running:
    """What drain() runs: a service and its queue."""

    service: UseCases
    queue: InMemoryJobQueue


class ObjectUrlLinks:
    """Links whose object URL names the key, as a presigned GET would."""

    def upload_target(
        self, key: str, content_type: str, max_bytes: int, base_url: str, size: int | None = None
    ) -> UploadTarget:
        raise AssertionError("not used")

    def rendition_url(self, image_id: str, key: str, filename: str, base_url: str) -> str:
        return f"https://store.example/{key}"

    def verify_rendition(self, key: str, expires: int, signature: str) -> bool:
        return False

    def rendition_answer(self, key: str) -> RenditionAnswer:
        return RenditionRedirect(f"https://store.example/{key}", {})

    def object_url(self, key: str, content_type: str) -> str:
        return f"https://store.example/{key}?type={content_type}"


def test_results_over_the_inline_limit_are_redirected_to_the_stored_object() -> None:
    settings = Settings()
    delivery = delivery_options(settings, unsafe_allowed=True, inline_limit_bytes=2_000)
    options = dataclasses.replace(service_options(settings), delivery=delivery)
    objects, queue = InMemoryObjectStore(), InMemoryJobQueue()
    service = UseCases.build(
        objects, InMemoryMetadataStore(), queue, InProcessRenderer(), NullMetrics(), options
    )
    app = create_app(ApiContext(service, ObjectUrlLinks(), "aws", 10**7, 65536, 6))
    record = service.ingest.upload("photo.jpg", imagegen.photo_jpeg(800, 600), "image/jpeg")
    drain(Running(service, queue))
    with TestClient(app) as client:
        small = client.get(f"/img/_/w:16/plain/{record.image_id}@jpg")
        assert small.status_code == 200 and small.headers["content-type"] == "image/jpeg"
        for attempt in ("miss", "hit"):
            big = client.get(f"/img/_/w:800/plain/{record.image_id}@png", follow_redirects=False)
            assert big.status_code == 307, attempt
            url = big.headers["location"]
            key = url.removeprefix("https://store.example/").split("?")[0]
            assert key.startswith(f"derived/{record.image_id}/")
            assert url.endswith("?type=image/png")
            assert big.headers["cache-control"] == "no-store"
            with Image.open(io.BytesIO(objects.get(key))) as im:
                assert (im.format, im.size) == ("PNG", (800, 600))
