"""The image record and the values that travel between the core and its ports."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from imgpipe.core.formats import OutputFormat


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a Z, the one time format of records."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


class Status(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    PROCESSED = "PROCESSED"
    FAILED = "FAILED"

    @property
    def terminal(self) -> bool:
        return self in (Status.PROCESSED, Status.FAILED)


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class ErrorInfo(_Model):
    code: str
    message: str


class Exif(_Model):
    """The curated EXIF subset a record keeps; GPS only when the config allows it."""

    make: str | None = None
    model: str | None = None
    lens: str | None = None
    taken_at: str | None = Field(default=None, alias="takenAt")
    exposure_time: str | None = Field(default=None, alias="exposureTime")
    f_number: float | None = Field(default=None, alias="fNumber")
    iso: int | None = None
    focal_length: float | None = Field(default=None, alias="focalLength")
    gps: dict[str, float] | None = None


class Rendition(_Model):
    name: str
    format: OutputFormat
    key: str
    width: int
    height: int
    bytes: int
    url: str | None = None
    version_id: str | None = Field(
        default=None,
        alias="versionId",
        description="the object version the worker wrote (S3's VersionId); a CDN URL pins it",
    )
    spec_hash: str | None = Field(
        default=None, alias="specHash", description="hash of the preset settings that wrote it"
    )


class ImageMetadata(_Model):
    """What reading an image tells, before any rendition is written."""

    content_type: str = Field(alias="contentType")
    format: str
    file_size: int = Field(alias="fileSize")
    width: int
    height: int
    orientation: int = 1
    has_alpha: bool = Field(alias="hasAlpha")
    color_space: str = Field(alias="colorSpace")
    frames: int = 1
    exif: Exif | None = None
    sha256: str
    phash: str | None = None
    blurhash: str | None = None
    dominant_color: str | None = Field(default=None, alias="dominantColor")


class PublicRecord(_Model):
    """A record as users see it, renditions aside (SPEC: the image record). The API's
    OpenAPI models derive from this and `Rendition`, so the docs cannot drift from it."""

    image_id: str = Field(alias="imageId")
    key: str
    bucket: str
    version_id: str | None = Field(default=None, alias="versionId")
    etag: str | None = None
    status: Status
    error: ErrorInfo | None = Field(default=None, description="set when FAILED")
    attempts: int = 0

    content_type: str | None = Field(default=None, alias="contentType")
    format: str | None = None
    file_size: int | None = Field(default=None, alias="fileSize")
    width: int | None = Field(default=None, description="after EXIF orientation")
    height: int | None = Field(default=None, description="after EXIF orientation")
    orientation: int | None = None
    has_alpha: bool | None = Field(default=None, alias="hasAlpha")
    color_space: str | None = Field(default=None, alias="colorSpace")
    frames: int | None = None
    exif: Exif | None = None
    sha256: str | None = None
    phash: str | None = None
    blurhash: str | None = None
    dominant_color: str | None = Field(default=None, alias="dominantColor")
    rendition_hash: str | None = Field(
        default=None,
        alias="renditionHash",
        description="hash of the rendition settings that produced `renditions`",
    )
    duplicate_of: str | None = Field(
        default=None,
        alias="duplicateOf",
        description="the earliest image with the same bytes (sha256) when this one was processed",
    )

    uploaded_at: str = Field(alias="uploadedAt")
    processed_at: str | None = Field(default=None, alias="processedAt")
    updated_at: str = Field(alias="updatedAt")
    duration_ms: int | None = Field(default=None, alias="durationMs")


# What the stores keep beside the public fields; never shown to users.
INTERNAL_FIELDS = frozenset({"revision", "lease_until", "sequencer"})


class ImageRecord(PublicRecord):
    """One record per original object key (SPEC: the image record)."""

    renditions: list[Rendition] = Field(default_factory=list)
    sequencer: str = Field(description="orders versions of one key; hex, compared as a number")
    revision: int = Field(default=0, description="bumped by every write; the store's CAS token")
    lease_until: str | None = Field(default=None, alias="leaseUntil")

    def public(self) -> dict[str, Any]:
        """The record as users see it: SPEC's field names, no store internals."""
        return self.model_dump(by_alias=True, mode="json", exclude=set(INTERNAL_FIELDS))

    def to_item(self) -> dict[str, Any]:
        """Everything, for a store to keep."""
        return self.model_dump(by_alias=True, mode="json")


class ObjectInfo(_Model):
    """What a HEAD of an object tells."""

    key: str
    size: int
    etag: str
    content_type: str | None = None
    version_id: str | None = None
    sequencer: str | None = None
    last_modified: str | None = None


class ObjectEvent(_Model):
    """An object under uploads/ was created (or must be processed again)."""

    key: str
    sequencer: str
    size: int | None = None
    etag: str | None = None
    version_id: str | None = None
    event_time: str | None = None
    force: bool = False


class RecordPage(_Model):
    items: list[ImageRecord]
    next_cursor: str | None = None
