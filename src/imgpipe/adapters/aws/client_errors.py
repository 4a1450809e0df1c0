"""Which botocore failures are transient: throttling, 5xx and broken connections.

The AWS adapters wrap their calls in `transient_errors(...)`, so the core sees one type,
StoreUnavailableError (the queue retries, then dead-letters); everything else propagates as
it is (a missing table or a denied permission is a deployment bug, not something to retry).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from imgpipe.core.errors import StoreUnavailableError

# Error codes AWS answers when retrying later can help (S3, DynamoDB and SQS spellings).
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "TransactionConflictException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "KMS.ThrottlingException",
        "KMS.KMSInternalException",
        "AWS.SimpleQueueService.ServiceUnavailable",
    }
)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def http_status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return True
    if isinstance(exc, ClientError):
        status = http_status(exc)
        return error_code(exc) in TRANSIENT_CODES or status == 429 or status >= 500
    return False


@contextmanager
def transient_errors(what: str) -> Iterator[None]:
    """Raise StoreUnavailableError for a failure of `what` that a retry may fix."""
    try:
        yield
    except (ClientError, BotoConnectionError, HTTPClientError) as exc:
        if is_transient(exc):
            raise StoreUnavailableError(f"{what}: {exc}") from exc
        raise
