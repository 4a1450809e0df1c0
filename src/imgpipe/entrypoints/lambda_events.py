"""The events Lambda: batches of the images table's stream -> image.* events on EventBridge.

Lambda's event source mapping (infra/template.yaml, EventsFunction) hands over up to 10
stream records of one shard, in stream order, and (its filter) only writes that leave an item
PROCESSED or FAILED; the full rule of which writes call for an event is applied here
(adapters/aws/table_stream.py). Their events go out in one PutEvents. A record whose event was
not put, or that cannot be read, is reported in `batchItemFailures`: Lambda delivers it again
with every later record of the batch, until the mapping's MaximumRetryAttempts or
MaximumRecordAgeInSeconds, and then sends where the batch lies in the stream to the failure
queue (`imgpipe replay-events` publishes it from there). Events put before a retry are put
again with the same `id`: consumers drop repeats by it. The worker and the API publish
nothing on AWS, so each finished write is published from here alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from imgpipe.bootstrap import lambda_events_app

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()  # service from POWERTOOLS_SERVICE_NAME; JSON lines

# The events function's wiring, built on the first invocation and kept for the process' life.
app = lambda_events_app


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, list[dict[str, str]]]:
    runtime = app()
    records = event.get("Records")
    if not isinstance(records, list):
        logger.error("an event without Records: not a DynamoDB stream batch", event=event)
        return {"batchItemFailures": []}
    try:
        put, failures = runtime.publish(records)
        for failure in failures:
            logger.warning(
                "an event is not on the bus yet: Lambda delivers its stream record again",
                sequenceNumber=failure.sequence_number,
                reason=failure.reason,
            )
        if failures:
            runtime.metrics.incr("events_failed", len(failures))
        logger.info("events put", records=len(records), put=put, failed=len(failures))
        return {"batchItemFailures": [{"itemIdentifier": f.sequence_number} for f in failures]}
    finally:
        runtime.metrics.flush()
