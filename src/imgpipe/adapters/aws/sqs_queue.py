"""The SQS job queue: a standard queue whose RedrivePolicy dead-letters to a second queue.

What differs from the local queue, and why it does not matter here:
- `dedup_id` is ignored: a standard queue has no deduplication (FIFO queues cannot take S3
  notifications). Duplicates are harmless: the record's compare-and-set and the S3 sequencer
  make a second delivery of the same event a no-op.
- Order is best effort, visibility timeouts are whole seconds (rounded up), and
  `oldest_age_s` is 0: SQS tells the age of the oldest message only as the CloudWatch metric
  ApproximateAgeOfOldestMessage, which the alarms and the dashboard read.
- `redrive` receives from the DLQ, sends each body back to the queue, then deletes it from
  the DLQ (at least once). StartMessageMoveTask would do it server-side, but it is
  asynchronous, counts nothing for us, and moto does not implement it; this works on both.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from imgpipe.adapters.aws.client_errors import error_code, transient_errors
from imgpipe.core.errors import InvalidRequestError, StoreUnavailableError
from imgpipe.core.ports import Message, QueueStats

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import (
        DeleteMessageBatchRequestEntryTypeDef,
        MessageTypeDef,
        SendMessageBatchRequestEntryTypeDef,
    )

MAX_BATCH = 10
MAX_VISIBILITY_S = 12 * 3600
REDRIVE_VISIBILITY_S = 60
# What SQS answers for a receipt that is no longer the message's current one.
_STALE_RECEIPT_CODES = frozenset(
    {
        "ReceiptHandleIsInvalid",
        "AWS.SimpleQueueService.ReceiptHandleIsInvalid",
        "InvalidParameterValue",
        "MessageNotInflight",
        "AWS.SimpleQueueService.MessageNotInflight",
    }
)


def _seconds(value: float) -> int:
    return min(MAX_VISIBILITY_S, max(0, math.ceil(value)))


def _body(text: str) -> Mapping[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {"raw": text}
    return value if isinstance(value, dict) else {"raw": value}


def _message(found: MessageTypeDef) -> Message:
    attributes = found.get("Attributes", {})
    return Message(
        body=_body(found.get("Body", "")),
        receipt=found["ReceiptHandle"],
        receive_count=int(attributes.get("ApproximateReceiveCount", "1")),
        message_id=found["MessageId"],
    )


class SqsJobQueue:
    """JobQueue over an SQS standard queue and its dead-letter queue."""

    def __init__(
        self, client: SQSClient, queue_url: str, dlq_url: str, wait_time_s: int = 0
    ) -> None:
        self.client = client
        self.queue_url = queue_url
        self.dlq_url = dlq_url
        self.wait_time_s = wait_time_s

    def send(self, body: Mapping[str, Any], dedup_id: str | None = None, cost: int = 0) -> None:
        """Enqueue. `dedup_id` is ignored: a standard queue does not deduplicate. So is `cost`:
        SQS keeps no order, and Lambda runs as many workers as there are batches."""
        with transient_errors("SQS SendMessage"):
            self.client.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(dict(body)))

    def receive(self, max_messages: int, visibility_s: float) -> list[Message]:
        """Up to min(max_messages, 10) messages, each hidden for `visibility_s` (rounded up)."""
        if max_messages < 1:
            raise InvalidRequestError("max_messages must be at least 1")
        with transient_errors("SQS ReceiveMessage"):
            found = self.client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(max_messages, MAX_BATCH),
                VisibilityTimeout=_seconds(visibility_s),
                WaitTimeSeconds=self.wait_time_s,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
        return [_message(m) for m in found.get("Messages", [])]

    def ack(self, message: Message) -> None:
        """Delete the message; a stale receipt deletes nothing and is not an error."""
        try:
            with transient_errors("SQS DeleteMessage"):
                self.client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message.receipt)
        except ClientError as exc:
            if error_code(exc) not in _STALE_RECEIPT_CODES:
                raise

    def release(self, message: Message, delay_s: float) -> None:
        """Visible again after `delay_s` (whole seconds, at most 12 h); a stale receipt does
        nothing."""
        try:
            with transient_errors("SQS ChangeMessageVisibility"):
                self.client.change_message_visibility(
                    QueueUrl=self.queue_url,
                    ReceiptHandle=message.receipt,
                    VisibilityTimeout=_seconds(delay_s),
                )
        except ClientError as exc:
            if error_code(exc) not in _STALE_RECEIPT_CODES:
                raise

    def _counts(self, url: str) -> dict[str, int]:
        with transient_errors("SQS GetQueueAttributes"):
            found = self.client.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )
        return {name: int(value) for name, value in found.get("Attributes", {}).items()}

    def stats(self) -> QueueStats:
        live = self._counts(self.queue_url)
        dead = self._counts(self.dlq_url)
        return QueueStats(
            visible=live.get("ApproximateNumberOfMessages", 0),
            in_flight=live.get("ApproximateNumberOfMessagesNotVisible", 0),
            dead=dead.get("ApproximateNumberOfMessages", 0)
            + dead.get("ApproximateNumberOfMessagesNotVisible", 0),
            extra={"delayed": live.get("ApproximateNumberOfMessagesDelayed", 0)},
        )

    def redrive(self) -> int:
        """Move every dead letter back to the queue (fresh receive count); how many moved."""
        moved = 0
        while True:
            with transient_errors("SQS ReceiveMessage (DLQ)"):
                found = self.client.receive_message(
                    QueueUrl=self.dlq_url,
                    MaxNumberOfMessages=MAX_BATCH,
                    VisibilityTimeout=REDRIVE_VISIBILITY_S,
                    WaitTimeSeconds=1,  # a long poll asks every SQS host: empty means empty
                ).get("Messages", [])
            if not found:
                return moved
            entries: list[SendMessageBatchRequestEntryTypeDef] = [
                {"Id": str(n), "MessageBody": m.get("Body", "")} for n, m in enumerate(found)
            ]
            with transient_errors("SQS SendMessageBatch"):
                sent = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            ok = {int(e["Id"]) for e in sent.get("Successful", [])}
            done: list[DeleteMessageBatchRequestEntryTypeDef] = [
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                for n, m in enumerate(found)
                if n in ok
            ]
            if done:
                with transient_errors("SQS DeleteMessageBatch"):
                    self.client.delete_message_batch(QueueUrl=self.dlq_url, Entries=done)
            moved += len(done)
            if len(done) < len(found):
                # The rest stay dead letters (visible again in a minute): run redrive again.
                failed = [f.get("Code") for f in sent.get("Failed", [])]
                raise StoreUnavailableError(
                    f"moved {moved} dead letters; {len(found) - len(done)} not sent: {failed}"
                )
