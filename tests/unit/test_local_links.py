"""The local server's links (adapters/local/links.py): upload URLs that verify for exactly
what they were signed for, rendition links signed only when the API wants a token, and a
rendition answered with its bytes."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from fakes import InMemoryObjectStore
from imgpipe.adapters.local.links import LocalLinks
from imgpipe.core.errors import ObjectNotFoundError
from imgpipe.core.links import RenditionBytes

KEY = "uploads/0123/cat photo.jpg"
SECRET = b"k" * 32


def links(*, ttl_s: int = 900, sign_renditions: bool = True) -> LocalLinks:
    return LocalLinks(InMemoryObjectStore(), SECRET, ttl_s, sign_renditions)


def query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def test_an_upload_url_verifies_for_what_it_was_signed_for_and_nothing_else() -> None:
    local = links()
    target = local.upload_target(KEY, "image/jpeg", 1000, "http://127.0.0.1:8080", size=10)
    assert target.method == "PUT"
    assert target.headers == {"Content-Type": "image/jpeg"}
    assert target.url.startswith("http://127.0.0.1:8080/upload/uploads/0123/cat%20photo.jpg?")
    q = query(target.url)
    expires, signature = int(q["expires"]), q["signature"]
    assert (q["contentType"], q["maxBytes"], q["size"]) == ("image/jpeg", "1000", "10")

    assert local.verify_upload(KEY, "image/jpeg", 1000, expires, signature, 10)
    assert not local.verify_upload(
        "uploads/0123/dog.jpg", "image/jpeg", 1000, expires, signature, 10
    )
    assert not local.verify_upload(KEY, "image/png", 1000, expires, signature, 10)
    assert not local.verify_upload(KEY, "image/jpeg", 2000, expires, signature, 10)
    assert not local.verify_upload(KEY, "image/jpeg", 1000, expires, signature, 11)
    assert not local.verify_upload(KEY, "image/jpeg", 1000, expires, signature)  # size dropped
    assert not local.verify_upload(KEY, "image/jpeg", 1000, expires + 60, signature, 10)
    assert not local.verify_upload(KEY, "image/jpeg", 1000, expires, "0" * 64, 10)
    # a non-ASCII signature is a wrong one, not an error
    assert not local.verify_upload(KEY, "image/jpeg", 1000, expires, "é" * 64, 10)


def test_an_upload_url_without_a_declared_size_verifies_without_one() -> None:
    local = links()
    q = query(local.upload_target(KEY, "image/png", 1000, "http://h").url)
    assert "size" not in q
    assert local.verify_upload(KEY, "image/png", 1000, int(q["expires"]), q["signature"])


def test_an_expired_upload_url_does_not_verify() -> None:
    local = links(ttl_s=-5)
    q = query(local.upload_target(KEY, "image/jpeg", 1000, "http://h").url)
    assert not local.verify_upload(KEY, "image/jpeg", 1000, int(q["expires"]), q["signature"])


def test_rendition_links_are_signed_only_when_the_api_wants_a_token() -> None:
    key = "renditions/0123/thumb.webp"
    url = links(sign_renditions=False).rendition_url("0123", key, "thumb.webp", "http://h")
    assert url == "http://h/images/0123/renditions/thumb.webp"

    local = links()
    signed = local.rendition_url("0123", key, "thumb.webp", "http://h")
    assert signed.startswith("http://h/images/0123/renditions/thumb.webp?")
    q = query(signed)
    assert local.verify_rendition(key, int(q["expires"]), q["signature"])
    assert not local.verify_rendition(
        "renditions/0123/large.webp", int(q["expires"]), q["signature"]
    )
    assert not local.verify_rendition(key, int(q["expires"]), "é" * 64)


def test_a_rendition_is_answered_with_its_bytes_cached_privately() -> None:
    local = links()
    local.objects.put("renditions/0123/thumb.webp", b"RIFF....WEBP", "image/webp")
    answer = local.rendition_answer("renditions/0123/thumb.webp")
    assert answer == RenditionBytes(b"RIFF....WEBP", {"Cache-Control": "private, max-age=300"})
    with pytest.raises(ObjectNotFoundError):
        local.rendition_answer("renditions/0123/gone.webp")
