"""The worker Lambda: SQS batches of S3 notifications (and our own messages) -> service calls.

Each SQS record's body is one of
- an S3 event notification: `Records[]` of `ObjectCreated:*` / `ObjectRemoved:*`, keys
  URL-encoded (decoded with unquote_plus), with sequencer, versionId, eTag, size, eventTime;
- the `s3:TestEvent` S3 sends when the notification is configured: skipped;
- our own message (reprocess, backfill, redriven): a job's body (core.jobs): `created`,
  `removed`, or `rerender` from `imgpipe reprocess --stale`.

A bad image ends FAILED and its message succeeds; a transient failure raises, so that record
alone is reported in `batchItemFailures` and SQS redelivers it, then dead-letters it. On the
last receive the record is marked FAILED first, so a dead letter is visible on the record.
Import loads only what every invocation needs (not pyvips: imaging imports it when it first
renders); settings, clients and the service are built on the first invocation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from pydantic import ValidationError

from imgpipe.bootstrap import lambda_app
from imgpipe.core import jobs
from imgpipe.core.errors import RequestError, TransientError
from imgpipe.core.keys import image_id_for
from imgpipe.core.model import ObjectEvent
from imgpipe.service import dispatch, give_up

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from imgpipe.bootstrap import AwsApp

logger = Logger()  # service from POWERTOOLS_SERVICE_NAME; JSON lines
# A batch whose every record failed is still a partial response (not a function error):
# Lambda errors then mean crashes and timeouts only.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

TEST_EVENT = "s3:TestEvent"
LOG_KEYS = ("imageId", "key", "attempt")
TIME_MARGIN_S = 5.0


# The AWS wiring, built on the first invocation and kept for the life of the process.
app = lambda_app


def jobs_from(body: Mapping[str, Any]) -> Iterator[jobs.Job]:
    """The jobs a body stands for (raises MalformedJobError for one of ours that is not)."""
    if body.get("Event") == TEST_EVENT:
        logger.info("skipping the S3 test event", bucket=body.get("Bucket"))
        return
    if body.get("type") in jobs.KINDS:
        yield jobs.parse(body)
        return
    records = body.get("Records")
    if not isinstance(records, list):
        logger.error("dropping a message that is neither an S3 event nor ours", body=body)
        return
    for record in records:
        name = str(record.get("eventName", ""))
        obj = record.get("s3", {}).get("object", {})
        key = unquote_plus(str(obj.get("key", "")))
        if name.startswith("ObjectCreated:"):
            sequencer = obj.get("sequencer")
            if not sequencer:
                logger.warning("an S3 event without a sequencer", key=key, eventName=name)
            event = ObjectEvent(
                key=key,
                sequencer=sequencer or "0",
                size=obj.get("size"),
                etag=obj.get("eTag"),
                version_id=obj.get("versionId"),
                event_time=record.get("eventTime"),
            )
            yield jobs.Created(event)
        elif name.startswith("ObjectRemoved:"):
            yield jobs.Removed(key)
        else:
            logger.info("ignoring an S3 event", eventName=name, key=key)


class OutOfTimeError(TransientError):
    """Too little of this invocation is left to render one more image: SQS redelivers it."""

    code = "out_of_time"


def handle_record(
    app: AwsApp, record: SQSRecord, remaining_ms: Callable[[], int] | None = None
) -> None:
    """One SQS record: every message in it, or raise (transient) to have it redelivered.

    A record is not started with less than one render's time limit (plus a margin) left in
    the invocation: one slow image must not time out the rest of a batch and spend their
    receives."""
    needed_ms = (app.settings.limits.processing_timeout_s + TIME_MARGIN_S) * 1000
    if remaining_ms is not None and remaining_ms() < needed_ms:
        raise OutOfTimeError(f"{remaining_ms()} ms left in this invocation; it needs {needed_ms:g}")
    attempt = int(record.attributes.approximate_receive_count or 1)
    try:
        body = json.loads(record.body)
        found = list(jobs_from(body if isinstance(body, dict) else {}))
    except (ValueError, TypeError, AttributeError, ValidationError) as exc:
        # Nothing will ever make this message processable (a MalformedJobError among them):
        # acknowledge it, loudly.
        logger.error("dropping a malformed message", error=str(exc), messageId=record.message_id)
        return
    for job in found:
        logger.append_keys(imageId=image_id_for(job.key), key=job.key, attempt=attempt)
        try:
            run_job(app, job, attempt)
        finally:
            logger.remove_keys(list(LOG_KEYS))


def run_job(app: AwsApp, job: jobs.Job, attempt: int) -> None:
    """One job, or raise (transient) to have its record redelivered; on the last attempt the
    record is marked FAILED first (service.give_up), as the local worker does."""
    try:
        dispatch(job, app.service)
    except (RequestError, ValidationError) as exc:
        logger.error("dropping a message the service refused", error=str(exc))
    except Exception as exc:
        last = jobs.gives_up(attempt, app.settings.server.max_attempts)
        logger.warning(
            "giving up: SQS will dead-letter this message" if last else "will retry",
            error=repr(exc),
        )
        if last:
            try:
                give_up(job, exc, attempt, app.service)
            except Exception:
                logger.exception("could not mark the record FAILED")
        raise


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    runtime = app()
    try:
        return process_partial_response(
            event=event,
            record_handler=lambda record: handle_record(
                runtime, record, context.get_remaining_time_in_millis
            ),
            processor=processor,
            context=context,
        )
    finally:
        runtime.metrics.flush()
