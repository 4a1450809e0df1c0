"""RSA PKCS#1 v1.5 signatures over SHA-1, the one algorithm CloudFront signed URLs use, from a
PEM private key, in plain Python.

botocore's CloudFrontSigner takes the signing function from its caller. The usual one comes
from `cryptography` (or `rsa`), and neither is in the Lambda package (boto3 does not depend on
either): a native wheel of several megabytes for a few lines of arithmetic on Python's own
integers. `pow` is not constant-time; what it signs is a policy the function itself writes
(a URL and an expiry), never an input an attacker chooses byte by byte, and each signature is
checked with the public exponent before it is used (a faulty CRT result would leak the key).
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import NamedTuple

# DER of DigestInfo { AlgorithmIdentifier sha1, NULL } and the OCTET STRING header of a digest
# (RFC 8017, 9.2, note 1).
_SHA1_DIGEST_INFO = bytes.fromhex("3021300906052b0e03021a05000414")
_PEM = re.compile(
    r"-----BEGIN (RSA PRIVATE KEY|PRIVATE KEY)-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END \1-----"
)
_RSA_ENCRYPTION = bytes.fromhex("2a864886f70d010101")  # OID 1.2.840.113549.1.1.1


class RsaKeyError(ValueError):
    """The PEM is not an unencrypted RSA private key."""


class RsaPrivateKey(NamedTuple):
    n: int
    e: int
    d: int
    p: int
    q: int
    dp: int
    dq: int
    qinv: int

    @property
    def size(self) -> int:
        """The modulus's length in bytes: every signature's length."""
        return (self.n.bit_length() + 7) // 8


def load_pem(text: str) -> RsaPrivateKey:
    """The key of a PKCS#1 (`RSA PRIVATE KEY`) or PKCS#8 (`PRIVATE KEY`) PEM; RsaKeyError for
    anything else (an encrypted key, another algorithm), without quoting the text."""
    found = _PEM.search(text)
    if found is None:
        raise RsaKeyError(
            "no unencrypted RSA private key PEM (BEGIN RSA PRIVATE KEY or PRIVATE KEY)"
        )
    try:
        der = base64.b64decode("".join(found.group(2).split()), validate=True)
        if found.group(1) == "PRIVATE KEY":
            der = _pkcs8_inner(der)
        fields = _integers(_content(der, 0x30)[0])
    except RsaKeyError:
        raise
    except (ValueError, IndexError) as exc:
        raise RsaKeyError("the RSA private key PEM is malformed") from exc
    if len(fields) < 9 or fields[0] != 0:
        raise RsaKeyError("not a two-prime RSA private key")
    key = RsaPrivateKey(*fields[1:9])
    if key.p * key.q != key.n:
        raise RsaKeyError("the RSA private key is inconsistent (p*q is not n)")
    return key


def sign(key: RsaPrivateKey, message: bytes) -> bytes:
    """RSASSA-PKCS1-v1_5 with SHA-1 of `message` (what CloudFront verifies)."""
    # SHA-1 is not our choice: it is the only digest CloudFront signed URLs take.
    digest_info = _SHA1_DIGEST_INFO + hashlib.sha1(message).digest()  # noqa: S324
    padding = key.size - len(digest_info) - 3
    if padding < 8:
        raise RsaKeyError("the RSA key is too short to sign with")
    m = int.from_bytes(b"\x00\x01" + b"\xff" * padding + b"\x00" + digest_info, "big")
    # CRT (Garner): two half-size exponentiations instead of one.
    s1 = pow(m, key.dp, key.p)
    s2 = pow(m, key.dq, key.q)
    s = s2 + key.q * ((key.qinv * (s1 - s2)) % key.p)
    if pow(s, key.e, key.n) != m:
        raise RsaKeyError("the RSA signature did not verify: the key's CRT values are wrong")
    return s.to_bytes(key.size, "big")


def _pkcs8_inner(der: bytes) -> bytes:
    """The PKCS#1 key inside a PKCS#8 PrivateKeyInfo, which must name rsaEncryption."""
    info, _ = _content(der, 0x30)
    _, rest = _content(info, 0x02)  # version
    algorithm, rest = _content(rest, 0x30)
    oid, _ = _content(algorithm, 0x06)
    if oid != _RSA_ENCRYPTION:
        raise RsaKeyError("the PKCS#8 key is not an RSA key")
    inner, _ = _content(rest, 0x04)
    return inner


def _integers(body: bytes) -> list[int]:
    values: list[int] = []
    while body:
        value, body = _content(body, 0x02)
        values.append(int.from_bytes(value, "big", signed=True))
    return values


def _content(der: bytes, tag: int) -> tuple[bytes, bytes]:
    """The content of the DER element at the start of `der`, which must have `tag`, and what
    follows it."""
    if der[0] != tag:
        raise ValueError(f"DER tag {der[0]:#x}, expected {tag:#x}")
    length, start = der[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, start = int.from_bytes(der[2 : 2 + count], "big"), 2 + count
    end = start + length
    if end > len(der):
        raise ValueError("DER element runs past its end")
    return der[start:end], der[end:]
