"""The /img route's pure decisions: which image a source names, which records serve, the
version tag results are filed under, their keys, and the [transform] settings that shape
them (signing pairs from one value or several, unsafe mode only where allowed)."""

from __future__ import annotations

import pytest

from imgpipe.bootstrap.options import delivery_options, local_unsafe_allowed
from imgpipe.config import Settings
from imgpipe.core import keys
from imgpipe.core.derived import check_servable, image_id_of, twin_may_serve, version_tag
from imgpipe.core.errors import NotFoundError, NotProcessedError, UnrenderableError
from imgpipe.core.img_url import parse_img_path
from imgpipe.core.model import ErrorInfo, ImageRecord, Status

KEY = "uploads/0123456789abcdef/photo.jpg"


def record(status: Status, **fields: object) -> ImageRecord:
    return ImageRecord(
        imageId=keys.image_id_for(KEY),
        key=KEY,
        bucket="local",
        status=status,
        sequencer="01",
        uploadedAt="2026-01-01T00:00:00.000Z",
        updatedAt="2026-01-01T00:00:00.000Z",
        **fields,
    )


def test_a_source_is_an_image_id_or_an_upload_key_and_nothing_else() -> None:
    image_id = keys.image_id_for(KEY)
    assert image_id_of(image_id) == image_id
    assert image_id_of(KEY) == image_id
    assert image_id_of("local:///" + KEY) == image_id
    for other in (
        "http://example.com/a.jpg",
        "s3://bucket/uploads/a.jpg",
        "/etc/passwd",
        "../uploads/a.jpg",
        "renditions/abc/thumb.jpg",
        "derived/abc/v/x.jpg",
        "local:///etc/passwd",
        "uploads/",
        "",
    ):
        with pytest.raises(NotFoundError):
            image_id_of(other)


def test_which_records_serve() -> None:
    check_servable(record(Status.PROCESSED, hasAlpha=False))
    # A reprocess under way: the last processing's metadata is still on the record.
    check_servable(record(Status.PROCESSING, hasAlpha=False))
    for unready in (record(Status.PENDING), record(Status.PROCESSING)):
        with pytest.raises(NotProcessedError):
            check_servable(unready)
    failed = record(Status.FAILED, error=ErrorInfo(code="too_many_pixels", message="big"))
    with pytest.raises(UnrenderableError) as caught:
        check_servable(failed)
    assert caught.value.code == "too_many_pixels"


def test_the_version_tag_follows_the_version_and_each_processing() -> None:
    base = record(Status.PROCESSED, processedAt="2026-01-01T00:00:01.000Z")
    tag = version_tag(base)
    assert len(tag) == 16 and tag == version_tag(base.model_copy())
    assert version_tag(base.model_copy(update={"sequencer": "02"})) != tag
    assert version_tag(base.model_copy(update={"version_id": "v2"})) != tag
    assert version_tag(base.model_copy(update={"processed_at": "2026-01-02T00:00:00.000Z"})) != tag
    # What does not change the original or its processing does not change the tag.
    assert version_tag(base.model_copy(update={"revision": 9, "attempts": 3})) == tag


def test_derived_keys_are_out_of_reach_of_uploads_and_renditions() -> None:
    image_id = keys.image_id_for(KEY)
    key = keys.derived_key(image_id, "0123456789abcdef", "w:100", "webp")
    assert key.startswith(keys.DERIVED_PREFIX + image_id + "/0123456789abcdef/")
    assert key.endswith(".webp")
    assert keys.derived_key(image_id, "0123456789abcdef", "w:100", "avif") != key
    assert keys.derived_key(image_id, "0123456789abcdef", "w:101", "webp") != key
    assert not keys.is_upload_key(key)
    for name in ("../derived/x.jpg", "derived/x.jpg", "/derived/x"):
        assert keys.new_upload_key(name).startswith(keys.UPLOADS_PREFIX)
    assert keys.rendition_key(image_id, "thumb", "jpg").startswith(keys.RENDITIONS_PREFIX)


def test_keys_and_salts_one_or_several(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGPIPE_TRANSFORM__KEY", "aa,bb")
    monkeypatch.setenv("IMGPIPE_TRANSFORM__SALT", "cc, dd")
    assert Settings().transform.signing_keys() == ((b"\xaa", b"\xcc"), (b"\xbb", b"\xdd"))
    monkeypatch.setenv("IMGPIPE_TRANSFORM__KEY", "aa")
    monkeypatch.setenv("IMGPIPE_TRANSFORM__SALT", "cc")
    assert Settings().transform.signing_keys() == ((b"\xaa", b"\xcc"),)
    assert Settings(transform={"key": ["01"], "salt": ["02"]}).transform.signing_keys() == (
        (b"\x01", b"\x02"),
    )
    with pytest.raises(ValueError, match="one salt per key"):
        Settings(transform={"key": "aa,bb", "salt": "cc"})
    with pytest.raises(ValueError, match="hex"):
        Settings(transform={"key": "not hex", "salt": "cc"})


def test_unsigned_urls_only_on_loopback_without_a_token_or_a_key() -> None:
    def unsafe(**sections: dict[str, object]) -> bool:
        settings = Settings(**sections)  # type: ignore[arg-type]
        allowed = local_unsafe_allowed(settings)
        return delivery_options(settings, unsafe_allowed=allowed).unsafe

    assert unsafe()
    assert unsafe(server={"host": "::1"})
    assert not unsafe(server={"api_token": "t" * 20})
    assert not unsafe(server={"host": "0.0.0.0", "api_token": "t" * 20})
    assert not unsafe(transform={"key": "aa", "salt": "bb"})
    # The AWS wiring never allows them.
    assert not delivery_options(Settings(), unsafe_allowed=False).unsafe


@pytest.mark.parametrize(
    ("fields", "options", "may"),
    [
        ({}, "rs:fill:500:375", True),  # 1/8 of 4000 px is 500
        ({}, "rs:fill:501:375", False),
        ({}, "w:250/dpr:2", True),
        ({}, "w:250/dpr:2.1", False),
        ({}, "h:200/z:3", False),
        ({}, "mw:600", False),
        ({}, "c:400:300", False),  # no size asked: the crop at full resolution
        ({"format": "png"}, "rs:fill:100:100", False),
        ({"width": None, "height": None}, "rs:fill:100:100", False),
    ],
)
def test_a_twin_is_looked_up_only_for_a_jpeg_and_a_result_within_an_eighth(
    fields: dict[str, object], options: str, may: bool
) -> None:
    image = record(Status.PROCESSED).model_copy(
        update={"format": "jpeg", "width": 4000, "height": 3000, **fields}
    )
    url = parse_img_path(f"/_/{options}/plain/x", keys=[], unsafe=True, presets={})

    assert twin_may_serve(image, url.transform) is may
