"""The API's request and response bodies, and what each route declares in /openapi.json."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from imgpipe.core.model import ErrorInfo, PublicRecord, Rendition
from imgpipe.core.transform import ResizingType


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class UploadRequest(_Body):
    # Shortened for the key (core.keys.safe_filename), as a multipart upload's file name is.
    filename: str = Field(min_length=1, max_length=16 * 1024)
    content_type: str = Field(alias="contentType", min_length=1, max_length=255)
    size: int | None = Field(default=None, ge=0)


class UploadResponse(BaseModel):
    image_id: str = Field(serialization_alias="imageId")
    key: str
    upload_url: str = Field(serialization_alias="uploadUrl")
    method: Literal["PUT", "POST"]
    fields: dict[str, str]
    headers: dict[str, str]
    expires_at: str = Field(serialization_alias="expiresAt")


class ProcessRequest(_Body):
    key: str = Field(min_length=1, max_length=4096)


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    backend: str
    problems: dict[str, str] = Field(
        default_factory=dict, description="degraded parts and why (503); empty when ok"
    )


class ErrorResponse(BaseModel):
    error: ErrorInfo


# What the routes answer, for /openapi.json only: handlers return the dicts these describe
# (ImageRecord.public() plus rendition URLs), and the schemathesis tests hold them to it.


class RenditionView(Rendition):
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    url: str = Field(description="where to fetch it: signed when the API wants a token")


class UploadedImageView(PublicRecord):
    """A record without its renditions (the answer to a signed upload)."""

    # Every field is in every answer, null or not: the schema says so.
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


class ImageView(UploadedImageView):
    """An image record as the API shows it."""

    renditions: list[RenditionView]


class ImagePage(BaseModel):
    items: list[ImageView]
    next_cursor: str | None = Field(alias="nextCursor", description="null on the last page")


class SimilarImageView(ImageView):
    """A similar image: its record, and how close it is."""

    distance: int = Field(description="pHash Hamming distance (0-64) to the image asked about")
    same_bytes: bool = Field(alias="sameBytes", description="the same sha256: identical files")


class SimilarImages(BaseModel):
    image_id: str = Field(alias="imageId", description="the image asked about")
    max_distance: int = Field(alias="maxDistance", description="the distance searched")
    items: list[SimilarImageView] = Field(
        description="closest first; at equal distance the same bytes, then the earliest upload"
    )


class TransformUrlRequest(_Body):
    """The dashboard URL builder's choices (docs/api.md: POST /images/{imageId}/transform-url)."""

    width: int = Field(default=0, ge=0, le=1_000_000, description="px; 0: from the height")
    height: int = Field(default=0, ge=0, le=1_000_000, description="px; 0: from the width")
    fit: ResizingType = "fit"
    gravity: Literal["ce", "sm", "no", "so", "ea", "we", "noea", "nowe", "soea", "sowe"] = "ce"
    format: Literal["auto", "avif", "webp", "jpeg", "png"] = Field(
        default="auto", description="auto: none in the URL, the route negotiates from Accept"
    )
    quality: int = Field(default=0, ge=0, le=100, description="0: the configured quality")
    dpr: float = Field(default=1.0, gt=0, le=1_000, allow_inf_nan=False)


class TransformUrl(BaseModel):
    path: str = Field(description="/img/{signature}/{options}/plain/{imageId}")
    url: str = Field(description="the path on this server's base URL, or the CDN's in front")
    signed: bool = Field(description="false in unsafe mode: `insecure` stands for a signature")


# Every route may answer these; 422 is an image that cannot be processed (ImageError).
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 404, 409, 413, 415, 422, 429, 503)
}


def answers(
    status: int,
    model: type[BaseModel],
    description: str,
    *,
    also: dict[int | str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Route options declaring the body of a handler that answers with a JSONResponse of a
    plain dict (and, in `also`, other statuses this route answers differently from ERRORS).
    The dicts are JSON-ready (model_dump(mode="json")), so FastAPI's jsonable_encoder, which
    walks them again, is skipped: it doubled the cost of a page of records (docs/benchmarks.md,
    local end to end)."""
    return {
        "status_code": status,
        "response_model": None,
        "responses": {status: {"model": model, "description": description}, **(also or {})},
    }
