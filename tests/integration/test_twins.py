"""Twins over the real local wiring (engine/twin.py, service/delivery.py): an /img miss that
decodes a JPEG at 1/8 keeps that decode beside the image's results, and the next render that
needs it reads it instead of decoding the original, to the same bytes. A twin is removed and
replaced as the results are; one cut short is not read."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from test_derived_cache import CountingRenderer, app, client, derived_files, renderer, upload

import imagegen
from conftest import drain
from imgpipe.bootstrap import LocalApp, build_local
from imgpipe.config import Settings
from imgpipe.engine import twin as twins
from imgpipe.entrypoints.local_server import create_local_app

__all__ = ["app", "client", "renderer"]  # fixtures

PHOTO = imagegen.photo_jpeg(1600, 1200)  # 1/8: 200x150


def twin_files(app: LocalApp) -> list[Path]:
    return [p for p in derived_files(app) if p.name == "twin"]


def blackened(path: Path) -> None:
    """The twin at `path` with every pixel black, so that a result read from it shows."""
    twin = path.read_bytes()
    path.write_bytes(twin[: twins.HEAD] + bytes(len(twin) - twins.HEAD))


def darkest(content: bytes) -> int:
    with Image.open(io.BytesIO(content)) as image:
        return int(image.convert("L").getextrema()[1])


def test_a_miss_keeps_the_twin_and_the_next_render_reads_it(
    client: TestClient, app: LocalApp, renderer: CountingRenderer
) -> None:
    image_id, _ = upload(client, app, PHOTO)
    assert client.get(f"/img/_/rs:fill:120:90/plain/{image_id}@jpg").status_code == 200
    [twin] = twin_files(app)
    assert twin.stat().st_size == twins.HEAD + 200 * 150 * 3
    # WHEN another size and format is asked for, with the twin there, and again without it
    from_twin = client.get(f"/img/_/rs:fit:100:100/plain/{image_id}@webp")
    twin.unlink()
    from_original = client.get(f"/img/_/rs:fit:100:100/cb:1/plain/{image_id}@webp")
    # THEN both are rendered, to the same bytes
    assert renderer.transforms == 3
    assert from_twin.content == from_original.content
    # AND the second render kept a twin again, as the first did
    assert [p.name for p in twin_files(app)] == ["twin"]


def test_the_twin_is_what_is_read(client: TestClient, app: LocalApp) -> None:
    """Equal bytes alone would hold for a twin never read: a blackened one shows it is."""
    image_id, _ = upload(client, app, PHOTO)
    client.get(f"/img/_/rs:fill:120:90/plain/{image_id}@jpg")
    [twin] = twin_files(app)
    blackened(twin)

    assert darkest(client.get(f"/img/_/rs:fill:80:80/plain/{image_id}@png").content) == 0
    # a result over 1/8 of the image is decoded from the original, the twin not read
    assert darkest(client.get(f"/img/_/rs:fill:400:300/plain/{image_id}@png").content) > 100


def test_a_twin_cut_short_is_not_read_and_is_replaced(client: TestClient, app: LocalApp) -> None:
    image_id, _ = upload(client, app, PHOTO)
    client.get(f"/img/_/rs:fill:120:90/plain/{image_id}@jpg")
    [twin] = twin_files(app)
    whole = twin.read_bytes()
    blackened(twin)
    twin.write_bytes(twin.read_bytes()[:-1])  # as a power failure may leave a file not synced

    assert darkest(client.get(f"/img/_/rs:fill:80:80/plain/{image_id}@png").content) > 100
    assert twin.read_bytes() == whole


def test_no_twin_of_a_png_or_of_a_result_over_an_eighth(client: TestClient, app: LocalApp) -> None:
    png_id, _ = upload(client, app, imagegen.rgba_png(1600, 1200))
    jpeg_id, _ = upload(client, app, PHOTO)

    client.get(f"/img/_/rs:fill:120:90/plain/{png_id}@png")
    client.get(f"/img/_/rs:fill:400:300/plain/{jpeg_id}@jpg")
    # decoded at 1/8 (fit 133x100), but asked for 2000 px: none was looked for, none is kept
    client.get(f"/img/_/rs:fit:2000:100/ex:1/plain/{jpeg_id}@jpg")

    assert twin_files(app) == []


def test_a_reprocess_removes_the_twin(client: TestClient, app: LocalApp) -> None:
    image_id, _ = upload(client, app, PHOTO)
    client.get(f"/img/_/rs:fill:120:90/plain/{image_id}@jpg")
    [old] = twin_files(app)

    assert client.post(f"/images/{image_id}/reprocess").status_code == 202
    drain(app)

    assert not old.exists()


def test_none_with_twins_off(settings: Settings, renderer: CountingRenderer) -> None:
    off = settings.model_copy(
        update={"transform": settings.transform.model_copy(update={"twins": False})}
    )
    local = build_local(off, renderer=renderer, with_workers=False)
    try:
        with TestClient(create_local_app(local)) as client:
            image_id, _ = upload(client, local, PHOTO)
            assert client.get(f"/img/_/rs:fill:120:90/plain/{image_id}@jpg").status_code == 200
            assert client.get(f"/img/_/rs:fill:80:80/plain/{image_id}@jpg").status_code == 200
    finally:
        local.stop()

    assert twin_files(local) == []
    assert len(derived_files(local)) == 2


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[TestClient, LocalApp]]:
    """The app as `imgpipe serve` wires it: renders in the rendering processes."""
    local = build_local(settings, with_workers=False)
    with TestClient(create_local_app(local)) as c:
        yield c, local
    local.stop()


def test_a_twin_crosses_the_rendering_process(served: tuple[TestClient, LocalApp]) -> None:
    client, app = served
    image_id, _ = upload(client, app, PHOTO)
    client.get(f"/img/_/rs:fill:120:90/plain/{image_id}@jpg")
    [twin] = twin_files(app)
    blackened(twin)

    assert darkest(client.get(f"/img/_/rs:fill:80:80/plain/{image_id}@jpg").content) < 10
