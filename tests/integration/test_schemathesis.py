"""Schemathesis against the local API in-process (the real local wiring, rendering in-process):
every operation of /openapi.json must answer no 5xx, only statuses it declares, and bodies
that match the response schemas it declares.

Two tests: generated requests (valid and deliberately broken) over every operation, and the
answers that random data never reaches (a PROCESSED and a FAILED record, a rendition, a signed
upload) checked against the same schema, so the declared record shape is held to the truth.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

import hostile
import imagegen
from conftest import drain, local_app_with
from imgpipe.bootstrap import LocalApp
from imgpipe.config import Settings
from imgpipe.core.keys import image_id_for
from imgpipe.entrypoints.local_server import create_local_app

SEED = 20240517
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
GOOD_KEY = "uploads/good/photo.jpg"
BAD_KEY = "uploads/bad/photo.jpg"


@pytest.fixture
def local(settings: Settings) -> Iterator[LocalApp]:
    # The rate limit has its own test (test_api); here it would answer 429 to most requests.
    with local_app_with(settings, server={"rate_limit_per_s": 0}) as app:
        yield app


@pytest.fixture
def api_schema(local: LocalApp) -> Any:
    return schemathesis.openapi.from_asgi(
        "/openapi.json", create_local_app(local), config=SchemathesisConfig(seed=SEED)
    )


@pytest.mark.timeout(180)
def test_generated_requests_conform(api_schema: Any) -> None:
    # Each operation gets its own hypothesis run (schemathesis's pytest plugin is not used:
    # its lazy fixture parametrisation reaches into pytest internals that pytest 9.2 changed).
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 10
    calls: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=60,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def conform(case: Any) -> None:
            calls.append(case.operation.label)
            case.call_and_validate(checks=CHECKS)

        conform()
    # every operation was exercised, most of them many times over
    assert {o.label for o in operations} == set(calls)
    assert len(calls) >= 20 * len(operations), len(calls)


@pytest.mark.timeout(60)
def test_real_answers_conform(local: LocalApp, api_schema: Any) -> None:
    # GIVEN a processed photo and a failed upload in the store
    local.objects.put(GOOD_KEY, imagegen.photo_jpeg(300, 200), "image/jpeg")
    local.objects.put(BAD_KEY, hostile.by_name("truncated_jpeg_at200").data, "image/jpeg")
    good, bad = image_id_for(GOOD_KEY), image_id_for(BAD_KEY)

    def call(method: str, path: str, status: int, **parts: Any) -> Any:
        case = api_schema[path][method].Case(**parts)
        response = case.call_and_validate(checks=CHECKS)
        assert response.status_code == status, (method, path, response.text[:300])
        return response

    # WHEN each route answers with real records THEN every answer matches the schema
    call("POST", "/process-image", 200, body={"key": GOOD_KEY})
    assert call("POST", "/process-image", 422, body={"key": BAD_KEY}).json()["status"] == "FAILED"
    call("GET", "/images/{image_id}", 200, path_parameters={"image_id": good})
    call("GET", "/images/{image_id}", 200, path_parameters={"image_id": bad})
    # near-duplicates: a second copy of the photo is listed in the similar-image shape
    local.objects.put("uploads/copy/photo.jpg", imagegen.photo_jpeg(300, 200), "image/jpeg")
    call("POST", "/process-image", 200, body={"key": "uploads/copy/photo.jpg"})
    similar = call("GET", "/images/{image_id}/similar", 200, path_parameters={"image_id": good})
    assert [i["sameBytes"] for i in similar.json()["items"]] == [True]
    call("GET", "/images/{image_id}/similar", 409, path_parameters={"image_id": bad})
    # the URL builder's signed path (unsigned here: loopback, no token, no key)
    signed = call(
        "POST",
        "/images/{image_id}/transform-url",
        200,
        path_parameters={"image_id": good},
        body={"width": 100, "format": "webp"},
    )
    assert signed.json()["path"] == f"/img/insecure/rs:fit:100:0/f:webp/plain/{good}"
    listed = call("GET", "/images", 200, query={"limit": 1})
    cursor = listed.json()["nextCursor"]
    assert cursor is not None
    call("GET", "/images", 200, query={"limit": 1, "cursor": cursor, "status": "PROCESSED"})
    call("GET", "/images", 400, query={"cursor": "not-a-cursor"})
    call(
        "GET",
        "/images/{image_id}/renditions/{filename}",
        200,
        path_parameters={"image_id": good, "filename": "thumb.webp"},
    )
    call(
        "POST",
        "/images",
        202,
        body={"file": imagegen.rgba_png(20, 10)},
        media_type="multipart/form-data",
    )
    presigned = call(
        "POST", "/uploads", 201, body={"filename": "a.png", "contentType": "image/png"}
    ).json()
    url = urlsplit(presigned["uploadUrl"])
    call(
        "PUT",
        "/upload/{key}",
        201,
        path_parameters={"key": presigned["key"]},
        query=dict(parse_qsl(url.query)),
        headers=presigned["headers"],
        body=imagegen.rgba_png(20, 10),
        media_type="image/png",
    )
    # a rendition that vanished from the store is a 404, not an unprocessable image (422)
    local.objects.delete(f"renditions/{good}/thumb.jpg")
    call(
        "GET",
        "/images/{image_id}/renditions/{filename}",
        404,
        path_parameters={"image_id": good, "filename": "thumb.jpg"},
    )
    call("POST", "/images/{image_id}/reprocess", 202, path_parameters={"image_id": bad})
    assert drain(local) >= 1
    call("DELETE", "/images/{image_id}", 204, path_parameters={"image_id": good})
    call("GET", "/images/{image_id}", 404, path_parameters={"image_id": good})
    call("GET", "/health", 200)
    call("GET", "/metrics", 200)
    call("GET", "/stats", 200)
