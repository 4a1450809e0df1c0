"""The S3 object store: originals and renditions in one bucket, plus presigned POST and GET.

S3 answers HEAD and PUT without a sequencer (only event notifications carry one), so
`ObjectInfo.sequencer` is None; the record's state machine (core.lifecycle.version_order)
recognises an event for the record's own version by its versionId instead.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, BinaryIO

from botocore.exceptions import ClientError

from imgpipe.adapters.aws.client_errors import error_code, http_status, transient_errors
from imgpipe.core.errors import ObjectNotFoundError, UploadExistsError
from imgpipe.core.files import memory_spool
from imgpipe.core.keys import validate_key
from imgpipe.core.model import ObjectInfo, iso

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# (key, version_id, etag) -> the sequencer of that version, when something knows it.

_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "404", "NotFound"})
_LIST_PAGE = 1000


def _etag(value: str | None) -> str:
    return (value or "").strip('"')


def _iso(value: datetime | None) -> str | None:
    return iso(value) if value is not None else None


def _missing(exc: ClientError, *, version_given: bool) -> bool:
    code = error_code(exc)
    if code in _MISSING_CODES or http_status(exc) == 404:
        return True
    # A version id S3 cannot even parse is answered 400 InvalidArgument: no such version.
    return version_given and code == "InvalidArgument"


# What S3 answers a conditional write (If-None-Match: *) that finds the key taken: 412 when an
# object is there, 409 when another conditional write to the key is in progress.
_TAKEN = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})


@contextlib.contextmanager
def _exists_is_conflict(key: str) -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        if error_code(exc) in _TAKEN:
            raise UploadExistsError(f"{key!r} has been uploaded already") from exc
        raise


def _sized(body: bytes | BinaryIO) -> tuple[bytes | BinaryIO, int]:
    """The body to send and its length; a stream is sent as it is when it can seek."""
    if isinstance(body, bytes | bytearray | memoryview):
        data = bytes(body)
        return data, len(data)
    try:
        start = body.tell()
        end = body.seek(0, io.SEEK_END)
        body.seek(start)
    except (OSError, AttributeError, ValueError):
        data = body.read()
        return data, len(data)
    return body, end - start


class S3ObjectStore:
    """ObjectStore over one S3 bucket (versioned on AWS: get() may name a version)."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
    ) -> None:
        self.client = client
        self.bucket = bucket

    def head(self, key: str) -> ObjectInfo | None:
        validate_key(key)
        try:
            with transient_errors(f"HEAD s3://{self.bucket}/{key}"):
                found = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _missing(exc, version_given=False):
                return None
            raise
        etag = _etag(found.get("ETag"))
        version_id = found.get("VersionId")
        return ObjectInfo(
            key=key,
            size=int(found.get("ContentLength", 0)),
            etag=etag,
            content_type=found.get("ContentType"),
            version_id=version_id,
            last_modified=_iso(found.get("LastModified")),
        )

    def get(self, key: str, version_id: str | None = None) -> bytes:
        validate_key(key)
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id is not None:
            args["VersionId"] = version_id
        try:
            with transient_errors(f"GET s3://{self.bucket}/{key}"):
                found = self.client.get_object(**args)
                with contextlib.closing(found["Body"]) as stream:
                    return stream.read()
        except ClientError as exc:
            if _missing(exc, version_given=version_id is not None):
                shown = f"{key!r}" if version_id is None else f"{key!r} version {version_id!r}"
                raise ObjectNotFoundError(f"no object {shown}") from exc
            raise

    def open(self, key: str, version_id: str | None = None) -> bytes:
        return self.get(key, version_id)  # no file on this machine to hand over

    def put(
        self,
        key: str,
        body: bytes | BinaryIO,
        content_type: str,
        *,
        if_absent: bool = False,
        durable: bool = True,  # S3 is: every PUT is stored redundantly before it answers
    ) -> ObjectInfo:
        validate_key(key)
        payload, size = _sized(body)
        with _exists_is_conflict(key), transient_errors(f"PUT s3://{self.bucket}/{key}"):
            if if_absent:
                written = self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=payload,
                    ContentType=content_type,
                    IfNoneMatch="*",
                )
            else:
                written = self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=payload, ContentType=content_type
                )
        etag = _etag(written.get("ETag"))
        version_id = written.get("VersionId")
        return ObjectInfo(
            key=key,
            size=size,
            etag=etag,
            content_type=content_type,
            version_id=version_id,
        )

    def spool(self) -> BinaryIO:
        return memory_spool()  # put_object wants the body whole, or seekable

    def delete(self, key: str) -> None:
        """Idempotent (S3 answers 204 for a missing key). On a versioned bucket this adds a
        delete marker; the bucket's lifecycle expires the noncurrent versions."""
        validate_key(key)
        with transient_errors(f"DELETE s3://{self.bucket}/{key}"):
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix`, in UTF-8 byte order (S3's own)."""
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": _LIST_PAGE}
        )
        with transient_errors(f"LIST s3://{self.bucket}/{prefix}"):
            for page in pages:
                for entry in page.get("Contents", []):
                    yield ObjectInfo(
                        key=entry["Key"],
                        size=int(entry.get("Size", 0)),
                        etag=_etag(entry.get("ETag")),
                        last_modified=_iso(entry.get("LastModified")),
                    )

    # -- presigned URLs ----------------------------------------------------------------------

    def presigned_post(
        self, key: str, content_type: str, max_bytes: int, ttl_s: int
    ) -> tuple[str, dict[str, str], datetime]:
        """A browser-style POST upload of exactly `key`, with `content_type`, of 1 to
        `max_bytes` bytes: S3 refuses anything else. Returns (url, form fields, expiry)."""
        validate_key(key)
        expires = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=ttl_s)
        post = self.client.generate_presigned_post(
            Bucket=self.bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[
                ["content-length-range", 1, max_bytes],
                ["eq", "$Content-Type", content_type],
                ["eq", "$key", key],
            ],
            ExpiresIn=ttl_s,
        )
        return post["url"], {k: str(v) for k, v in post["fields"].items()}, expires

    def presigned_put(
        self, key: str, content_type: str, size: int, ttl_s: int
    ) -> tuple[str, dict[str, str], datetime]:
        """A PUT upload of exactly `key`, `content_type` and `size` bytes, once: the length
        and `If-None-Match: *` are signed, so S3 refuses another length (403) and a second
        upload to the key (412). Returns (url, headers the client must send, expiry)."""
        validate_key(key)
        expires = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=ttl_s)
        url = self.client.generate_presigned_url(
            "put_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ContentType": content_type,
                "ContentLength": size,
                "IfNoneMatch": "*",
            },
            ExpiresIn=ttl_s,
        )
        headers = {"Content-Type": content_type, "If-None-Match": "*"}
        return url, headers, expires

    def presigned_get(self, key: str, ttl_s: int, content_type: str | None = None) -> str:
        """A GET of `key` for `ttl_s` seconds; S3 answers it with `content_type` where given
        (response-content-type, part of what is signed), else with the object's own."""
        validate_key(key)
        params: dict[str, str] = {"Bucket": self.bucket, "Key": key}
        if content_type is not None:
            params["ResponseContentType"] = content_type
        return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=ttl_s)
