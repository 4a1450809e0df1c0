"""Every route of the HTTP API over the real local wiring (data folder, SQLite), in-process."""

from __future__ import annotations

import io
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from PIL import Image

import imagegen
from conftest import drain
from imgpipe.bootstrap import LocalApp, build_local
from imgpipe.config import Settings
from imgpipe.engine import InProcessRenderer
from imgpipe.entrypoints.local_server import create_local_app


@pytest.fixture
def client(local_app: LocalApp) -> Iterator[TestClient]:
    with TestClient(create_local_app(local_app)) as c:
        yield c


def _process(local_app: LocalApp) -> None:
    drain(local_app)


def error_code(response: object) -> str:
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"} or "error" in body
    return str(body["error"]["code"])


def test_health_and_openapi(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok", "version": "0.1.0", "backend": "local"}
    paths = client.get("/openapi.json").json()["paths"]
    for route in (
        "/uploads",
        "/images",
        "/process-image",
        "/images/{image_id}",
        "/images/{image_id}/reprocess",
        "/images/{image_id}/renditions/{filename}",
        "/health",
        "/metrics",
    ):
        assert route in paths
    assert client.get("/docs").status_code == 200


def test_multipart_upload_to_processed_with_renditions(
    client: TestClient, local_app: LocalApp
) -> None:
    photo = imagegen.photo_jpeg(1000, 750, orientation=6)
    response = client.post("/images", files={"file": ("IMG_0001.JPG", photo, "image/jpeg")})
    assert response.status_code == 202
    pending = response.json()
    assert pending["status"] == "PENDING"
    assert pending["key"].startswith("uploads/") and pending["key"].endswith("/IMG_0001.JPG")

    _process(local_app)
    record = client.get(f"/images/{pending['imageId']}").json()
    assert record["status"] == "PROCESSED"
    # orientation 6: stored 1000x750, shown 750x1000
    assert (record["width"], record["height"], record["orientation"]) == (750, 1000, 6)
    assert record["exif"]["make"] == "Canon"
    assert "gps" not in record["exif"] or record["exif"]["gps"] is None
    for r in record["renditions"]:
        got = client.get(urlsplit(r["url"]).path)
        assert got.status_code == 200
        assert (
            got.headers["content-type"] == {"jpeg": "image/jpeg", "webp": "image/webp"}[r["format"]]
        )
        with Image.open(io.BytesIO(got.content)) as im:
            assert im.size == (r["width"], r["height"])
            assert not im.getexif()
    assert client.get(f"/images/{pending['imageId']}/renditions/huge.jpg").status_code == 404


def test_presigned_put_upload(client: TestClient, local_app: LocalApp) -> None:
    png = imagegen.rgba_png(300, 200)
    body = client.post(
        "/uploads",
        json={"filename": "../../etc/passwd.png", "contentType": "image/png", "size": len(png)},
    ).json()
    assert body["method"] == "PUT" and body["fields"] == {}
    assert body["key"].startswith("uploads/") and body["key"].endswith("/passwd.png")
    url = urlsplit(body["uploadUrl"])
    target = f"{url.path}?{url.query}"

    # the wrong content type, or a tampered URL, is refused
    assert (
        client.put(target, content=png, headers={"Content-Type": "image/jpeg"}).status_code == 415
    )
    assert (
        client.put(
            target.replace("maxBytes=", "maxBytes=9"), content=png, headers=body["headers"]
        ).status_code
        == 401
    )
    done = client.put(target, content=png, headers=body["headers"])
    assert done.status_code == 201, done.text
    assert done.json()["imageId"] == body["imageId"]
    _process(local_app)
    assert client.get(f"/images/{body['imageId']}").json()["hasAlpha"] is True


def test_presigned_upload_limits(local_app: LocalApp, settings: Settings) -> None:
    small = settings.model_copy(
        update={"limits": settings.limits.model_copy(update={"max_bytes": 2000})}
    )
    app = build_local(small, renderer=InProcessRenderer(), with_workers=False)
    try:
        with TestClient(create_local_app(app)) as c:
            assert (
                error_code(
                    c.post("/uploads", json={"filename": "a.svg", "contentType": "image/svg+xml"})
                )
                == "unsupported_media_type"
            )
            assert (
                c.post(
                    "/uploads",
                    json={"filename": "a.jpg", "contentType": "image/jpeg", "size": 10**9},
                ).status_code
                == 413
            )
            body = c.post(
                "/uploads", json={"filename": "a.jpg", "contentType": "image/jpeg"}
            ).json()
            url = urlsplit(body["uploadUrl"])

            def chunks() -> Iterator[bytes]:  # no Content-Length: capped while streaming
                for _ in range(10):
                    yield b"\xff" * 1000

            response = c.put(f"{url.path}?{url.query}", content=chunks(), headers=body["headers"])
            assert response.status_code == 413
            assert error_code(response) == "too_large"
            big = c.post("/images", files={"file": ("a.jpg", b"\xff" * 100_000, "image/jpeg")})
            assert big.status_code == 413
            assert list(app.objects.list("uploads/")) == []
    finally:
        app.stop()


def test_process_image_route(client: TestClient, local_app: LocalApp) -> None:
    assert client.post("/process-image", json={}).status_code == 400
    assert client.post("/process-image", json={"key": "uploads/none.jpg"}).status_code == 404
    assert (
        client.post("/process-image", json={"key": "uploads/a.jpg", "bucket": "other"}).status_code
        == 400
    )  # no bucket parameter: only ours is reachable
    local_app.objects.put("uploads/ok/a.jpg", imagegen.photo_jpeg(300, 200), "image/jpeg")
    local_app.objects.put("uploads/bad/b.jpg", imagegen.truncated_jpeg(), "image/jpeg")
    ok = client.post("/process-image", json={"key": "uploads/ok/a.jpg"})
    assert ok.status_code == 200 and ok.json()["status"] == "PROCESSED"
    bad = client.post("/process-image", json={"key": "uploads/bad/b.jpg"})
    assert bad.status_code == 422
    assert bad.json()["status"] == "FAILED"
    assert bad.json()["error"]["code"] == "corrupt_image"


def test_listing_filters_pages_and_rejects_bad_input(
    client: TestClient, local_app: LocalApp
) -> None:
    ids = []
    for n in range(5):
        r = client.post(
            "/images", files={"file": (f"{n}.png", imagegen.rgba_png(20, 20), "image/png")}
        )
        ids.append(r.json()["imageId"])
    client.post("/images", files={"file": ("bad.jpg", b"not an image", "image/jpeg")})
    _process(local_app)

    seen, cursor = [], None
    while True:
        page = client.get(
            "/images", params={"limit": 2, **({"cursor": cursor} if cursor else {})}
        ).json()
        seen += [item["imageId"] for item in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert len(seen) == 6 and len(set(seen)) == 6
    assert seen[1:] == ids[::-1]  # newest first
    failed = client.get("/images", params={"status": "FAILED"}).json()["items"]
    assert [f["error"]["code"] for f in failed] == ["unsupported_format"]
    assert client.get("/images", params={"status": "NOPE"}).status_code == 400
    assert client.get("/images", params={"limit": 0}).status_code == 400
    assert client.get("/images", params={"limit": 101}).status_code == 400
    assert error_code(client.get("/images", params={"cursor": "garbage!"})) == "bad_request"


def test_reprocess_and_delete(client: TestClient, local_app: LocalApp) -> None:
    image_id = client.post(
        "/images", files={"file": ("a.png", imagegen.rgba_png(30, 30), "image/png")}
    ).json()["imageId"]
    _process(local_app)
    assert client.post(f"/images/{image_id}/reprocess").status_code == 202
    _process(local_app)
    assert client.get(f"/images/{image_id}").json()["attempts"] == 2
    assert client.delete(f"/images/{image_id}").status_code == 204
    assert client.get(f"/images/{image_id}").status_code == 404
    assert client.delete(f"/images/{image_id}").status_code == 404
    assert client.post("/images/not-an-id/reprocess").status_code == 404
    assert list(local_app.objects.list("")) == []


def test_errors_are_json_never_500(client: TestClient) -> None:
    for response in (
        client.get("/nope"),
        client.post("/uploads", content=b"{", headers={"Content-Type": "application/json"}),
        client.post("/uploads", json={"filename": 3, "contentType": ["x"]}),
        client.post("/uploads", json={"filename": "a", "contentType": "image/png", "x": 1}),
        client.post("/images"),
        client.put(
            "/upload/uploads/x.jpg?expires=1&signature=x&contentType=a&maxBytes=1", content=b"x"
        ),
        client.patch("/health"),
    ):
        assert 400 <= response.status_code < 500, response.text
        assert "error" in response.json()


def test_token_protects_everything_but_health(settings: Settings) -> None:
    secured = settings.model_copy(
        update={"server": settings.server.model_copy(update={"api_token": "s3cret"})}
    )
    app = build_local(secured, renderer=InProcessRenderer(), with_workers=False)
    try:
        with TestClient(create_local_app(app)) as c:
            assert c.get("/health").status_code == 200
            assert c.get("/images").status_code == 401
            assert c.get("/images", headers={"Authorization": "Bearer wrong"}).status_code == 401
            assert c.get("/metrics").status_code == 401
            auth = {"Authorization": "Bearer s3cret"}
            image_id = c.post(
                "/images",
                headers=auth,
                files={"file": ("a.png", imagegen.rgba_png(30, 30), "image/png")},
            ).json()["imageId"]
            drain(app)
            record = c.get(f"/images/{image_id}", headers=auth).json()
            # rendition URLs carry a signature, so an <img> tag can load them without a header
            url = urlsplit(record["renditions"][0]["url"])
            assert c.get(f"{url.path}?{url.query}").status_code == 200
            assert c.get(url.path).status_code == 401
            assert (
                c.get(f"{url.path}?{url.query.replace('signature=', 'signature=0')}").status_code
                == 401
            )
    finally:
        app.stop()


def test_metrics_count_processing(client: TestClient, local_app: LocalApp) -> None:
    client.post("/images", files={"file": ("a.png", imagegen.rgba_png(30, 30), "image/png")})
    client.post("/images", files={"file": ("b.jpg", b"nope", "image/jpeg")})
    _process(local_app)
    text = client.get("/metrics").text
    from prometheus_client.parser import text_string_to_metric_families

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("imgpipe_images_processed_total", ())] == 1
    assert samples[("imgpipe_images_failed_total", (("code", "unsupported_format"),))] == 1
    assert samples[("imgpipe_processing_seconds_count", ())] == 1
    assert samples[("imgpipe_images", (("status", "PROCESSED"),))] == 1
    assert samples[("imgpipe_queue_messages", (("state", "visible"),))] == 0


def test_stats_and_dashboard_page(client: TestClient, local_app: LocalApp) -> None:
    client.post("/images", files={"file": ("a.png", imagegen.rgba_png(30, 30), "image/png")})
    client.post("/images", files={"file": ("b.jpg", b"nope", "image/jpeg")})
    _process(local_app)
    stats = client.get("/stats").json()
    assert stats["counts"] == {"PENDING": 0, "PROCESSING": 0, "PROCESSED": 1, "FAILED": 1}
    assert stats["queue"] == {"visible": 0, "inFlight": 0, "dead": 0, "oldestAgeSeconds": 0.0}
    points = stats["series"]["points"]
    assert sum(p["processed"] for p in points) == 1 and sum(p["failed"] for p in points) == 1
    page = client.get("/")
    assert page.status_code == 200 and "<title>imgpipe</title>" in page.text
    for asset in ("app.js", "app.css", "charts.js", "blurhash.js"):
        assert client.get(f"/static/{asset}").status_code == 200
    assert "/stats" in client.get("/openapi.json").json()["paths"]


def test_rate_limit_answers_429_with_retry_after(settings: Settings) -> None:
    limited = settings.model_copy(
        update={
            "server": settings.server.model_copy(
                update={"rate_limit_per_s": 0.5, "rate_limit_burst": 3}
            )
        }
    )
    app = build_local(limited, renderer=InProcessRenderer(), with_workers=False)
    try:
        with TestClient(create_local_app(app)) as c:
            assert [c.get("/images").status_code for _ in range(3)] == [200, 200, 200]
            refused = c.get("/images")
            assert refused.status_code == 429
            assert refused.headers["retry-after"] == "2"
            assert error_code(refused) == "rate_limited"
            assert c.get("/health").status_code == 200  # never limited: probes must work
    finally:
        app.stop()
