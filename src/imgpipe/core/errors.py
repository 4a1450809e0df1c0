"""The exception tree: every failure imgpipe names, and whether retrying can help.

ImgpipeError
├── ImageError                 permanent: the image itself is bad; the record ends FAILED
│   ├── UnsupportedFormatError     unsupported_format
│   │   └── UnsupportedVariantError    unsupported_variant (a format read, this kind of it not)
│   ├── CorruptImageError          corrupt_image
│   ├── TooLargeError              too_large (bytes)
│   ├── TooManyPixelsError         too_many_pixels (width x height x frames)
│   ├── TooManyFramesError         too_many_frames
│   ├── ObjectNotFoundError        not_found (the original is gone)
│   └── ProcessingError            internal (the engine failed in a way retrying will not fix)
├── TransientError             retry: the queue redelivers, then dead-letters
│   ├── StoreUnavailableError      a backend did not answer or throttled
│   ├── ImageBusyError             another worker holds this image's lease
│   └── WorkerCrashedError         the decoding process died or hit a limit
└── RequestError               a client's mistake; the API answers 4xx
    ├── InvalidRequestError        400
    ├── UnauthorizedError          401
    ├── ForbiddenError             403 (bad_signature: an on-request transform's URL)
    ├── NotFoundError              404
    ├── KeyConflictError           409
    │   └── UploadExistsError          409 (already_uploaded: a signed upload URL is used once)
    ├── RequestInProgressError     409 (request_in_progress: that Idempotency-Key is in flight)
    ├── NotProcessedError          409 (not_processed: no hashes to compare yet)
    ├── IdempotencyKeyReusedError  422 (the same Idempotency-Key with another request)
    ├── PayloadTooLargeError       413
    └── UnsupportedMediaTypeError  415
"""

from __future__ import annotations


class DataDirBusyError(RuntimeError):
    """Another `imgpipe serve` already works on this data folder (a startup refusal, never
    a request's answer)."""


class ImgpipeError(Exception):
    """Base of every error imgpipe raises on purpose."""

    code = "internal"


class ImageError(ImgpipeError):
    """The image is bad: processing it again will fail again."""


class UnsupportedFormatError(ImageError):
    code = "unsupported_format"


class UnsupportedVariantError(UnsupportedFormatError):
    """A format imgpipe reads, in a variant its decoders cannot (a TIFF in CIELab, 12-bit
    samples): the file may well be sound, so it is not called corrupt."""

    code = "unsupported_variant"


class CorruptImageError(ImageError):
    code = "corrupt_image"


class TooLargeError(ImageError):
    code = "too_large"


class TooManyPixelsError(ImageError):
    code = "too_many_pixels"


class TooManyFramesError(ImageError):
    code = "too_many_frames"


class ObjectNotFoundError(ImageError):
    code = "not_found"


class ProcessingError(ImageError):
    code = "internal"


class TransientError(ImgpipeError):
    """Something between the parts failed: the same work may succeed later."""

    code = "transient"


class StoreUnavailableError(TransientError):
    code = "store_unavailable"


class ImageBusyError(TransientError):
    code = "image_busy"

    def __init__(self, message: str, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def __reduce__(self) -> tuple[type[ImageBusyError], tuple[str, float]]:
        return (type(self), (str(self), self.retry_after_s))


class WorkerCrashedError(TransientError):
    code = "worker_crashed"


class RequestError(ImgpipeError):
    """A client's mistake, answered with a 4xx."""

    code = "bad_request"
    status = 400


class InvalidRequestError(RequestError):
    code = "bad_request"
    status = 400


class UnauthorizedError(RequestError):
    code = "unauthorized"
    status = 401


class ForbiddenError(RequestError):
    """A signed URL whose signature does not verify (docs/api.md: On-request transforms)."""

    code = "bad_signature"
    status = 403


class NotFoundError(RequestError):
    code = "not_found"
    status = 404


class KeyConflictError(RequestError):
    code = "key_conflict"
    status = 409


class UploadExistsError(KeyConflictError):
    """The key already holds an upload: a signed upload URL is good for one upload."""

    code = "already_uploaded"


class RequestInProgressError(RequestError):
    """A request with this Idempotency-Key has started and not finished: retry later."""

    code = "request_in_progress"
    status = 409


class IdempotencyKeyReusedError(RequestError):
    """This Idempotency-Key was used for a different request (another file name, say)."""

    code = "idempotency_key_reused"
    status = 422


class NotProcessedError(RequestError):
    """Asked for what only a processed image has (its similar images)."""

    code = "not_processed"
    status = 409


class PayloadTooLargeError(RequestError):
    code = "too_large"
    status = 413


class UnsupportedMediaTypeError(RequestError):
    code = "unsupported_media_type"
    status = 415


_MAX_MESSAGE = 200


def one_line(exc: BaseException) -> str:
    """One readable line from an exception, for an error's message: a libvips error can be
    kilobytes of repeats, a pydantic one a line per field."""
    detail = str(getattr(exc, "detail", "") or "")
    lines = [line.strip() for line in (detail or str(exc)).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith("unable to ")] or lines
    message = "; ".join(dict.fromkeys(useful[:3])) or type(exc).__name__
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 3] + "..."
