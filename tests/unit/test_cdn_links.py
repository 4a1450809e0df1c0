"""The CloudFront signer's RSA (adapters.aws.rsa_sha1) against `cryptography`, the keys it takes
and refuses, and the CDN URLs' expiry (adapters.aws.cdn_links)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from imgpipe.adapters.aws import rsa_sha1
from imgpipe.adapters.aws.cdn_links import CdnUrls


def pem(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, fmt: serialization.PrivateFormat
) -> str:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


@pytest.mark.parametrize("bits", [1024, 2048, 3072])
@pytest.mark.parametrize(
    "fmt", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL]
)
def test_signatures_are_byte_for_byte_cryptographys(
    bits: int, fmt: serialization.PrivateFormat
) -> None:
    # GIVEN a key, as `openssl genrsa` or `openssl genpkey` write it
    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    key = rsa_sha1.load_pem(pem(private, fmt))
    for message in (b"", b'{"Statement":[]}', bytes(range(256)) * 9):
        # WHEN imgpipe signs THEN it is PKCS#1 v1.5 over SHA-1, deterministic: the same bytes
        ours = rsa_sha1.sign(key, message)
        assert ours == private.sign(message, padding.PKCS1v15(), hashes.SHA1())
        private.public_key().verify(ours, message, padding.PKCS1v15(), hashes.SHA1())


def test_keys_it_cannot_sign_with_are_refused_without_quoting_them() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encrypted = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    ).decode()
    ec_key = pem(ec.generate_private_key(ec.SECP256R1()), serialization.PrivateFormat.PKCS8)
    public = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    good = pem(private, serialization.PrivateFormat.TraditionalOpenSSL)
    truncated = good.replace(good.splitlines()[5] + "\n", "")
    for text, says in (
        (encrypted, "no unencrypted RSA private key"),
        (ec_key, "not an RSA key"),
        (public, "no unencrypted RSA private key"),
        (truncated, "malformed|inconsistent|two-prime"),
        ("", "no unencrypted RSA private key"),
    ):
        with pytest.raises(rsa_sha1.RsaKeyError, match=says) as refused:
            rsa_sha1.load_pem(text)
        body = "".join(text.splitlines()[1:-1])
        assert not body or body[:40] not in str(refused.value)


def test_a_signed_urls_expiry_is_at_least_the_ttl_and_on_the_hour() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    urls = CdnUrls.signed(
        "https://cdn.example", "K1", pem(private, serialization.PrivateFormat.PKCS8), 3600
    )
    start = datetime(2026, 12, 7, 10, 0, 0, tzinfo=UTC).timestamp()
    # an hour after 10:00:00 is 11:00:00 exactly; a second later it is noon
    urls.clock = lambda: start
    assert urls.expiry() == datetime(2026, 12, 7, 11, 0, 0, tzinfo=UTC)
    urls.clock = lambda: start + 1
    assert urls.expiry() == datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)
    # AND within that hour every URL of a version is the same
    first = urls.rendition("renditions/abc/thumb.webp", "v1")
    urls.clock = lambda: start + 3599
    assert urls.rendition("renditions/abc/thumb.webp", "v1") == first
    noon = int(datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC).timestamp())
    assert f"&Expires={noon}&" in first


def test_public_urls_quote_the_version_and_keep_the_path() -> None:
    urls = CdnUrls("https://cdn.example/")
    assert (
        urls.rendition("renditions/abc/thumb.webp", "3/L4kqtJl+x.y_z")
        == "https://cdn.example/renditions/abc/thumb.webp?versionId=3%2FL4kqtJl%2Bx.y_z"
    )
    assert urls.path("/img/sig/rs:fit:10:10/plain/abc") == (
        "https://cdn.example/img/sig/rs:fit:10:10/plain/abc"
    )
