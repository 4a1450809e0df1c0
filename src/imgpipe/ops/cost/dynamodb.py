"""DynamoDB's share of the bill: the write units of the record's puts in the table and each
GSI, what a processed record stores, and the lines for writes, reads, storage and PITR."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from imgpipe.ops import prices
from imgpipe.ops.cost.result import LineItem
from imgpipe.ops.cost.workload import GB, Volumes, Workload

Projection = Literal["ALL", "KEYS_ONLY", "INCLUDE"]


@dataclass(frozen=True)
class IndexModel:
    """A GSI as the cost of writing and storing it sees it.

    `keyed_by_status`: its key holds the status, so every status change moves the entry (a
    delete and a put: two index writes). `sparse`: only a PROCESSED record carries its key
    attributes (a PENDING or PROCESSING record is in none). `entry_bytes`: the size of one
    entry of a KEYS_ONLY or INCLUDE index, its 100 bytes of overhead included; an ALL index's
    entry is the item."""

    name: str
    projection: Projection
    keyed_by_status: bool = False
    sparse: bool = False
    entry_bytes: int = 0

    def present(self, status: str) -> bool:
        return not self.sparse or status == "PROCESSED"

    def entry(self, item_bytes: int) -> int:
        return item_bytes if self.projection == "ALL" else self.entry_bytes


# adapters/aws/dynamodb_store.py: byStatus (gsi1pk "{status}#{shard}") and byUpload
# (gsi2pk "all#{shard}"), both ALL, on every item; the near-duplicate indexes, sparse:
# bySha256 (KEYS_ONLY: imageId, sha256, gsi2sk) and byPhash0..3 (a 4-hex-digit band of the
# pHash, INCLUDE phash), which a status change alone never rewrites.
INDEXES = (
    IndexModel("byStatus", "ALL", keyed_by_status=True),
    IndexModel("byUpload", "ALL"),
    IndexModel("bySha256", "KEYS_ONLY", sparse=True, entry_bytes=262),
    *(IndexModel(f"byPhash{band}", "INCLUDE", sparse=True, entry_bytes=162) for band in range(4)),
)


def write_units(size_bytes: int) -> int:
    """On-demand write request units of one write of an item: 1 per KB (1024 bytes) begun."""
    return max(1, math.ceil(size_bytes / 1024))


Step = tuple[str | None, str]  # a put of the record: (status before or None, status after)


def index_write_units(index: IndexModel, before: int | None, after: int, step: Step) -> int:
    """WRUs one put of the record costs in one GSI (sizes are the table item's)."""
    was = step[0] is not None and index.present(step[0])
    now = index.present(step[1])
    if not was:
        return write_units(index.entry(after)) if now else 0
    old = index.entry(before or 0)
    if not now:
        return write_units(old)  # the entry is deleted
    if index.keyed_by_status:
        return write_units(old) + write_units(index.entry(after))
    if index.projection == "ALL":
        return write_units(max(old, index.entry(after)))
    return 0  # neither its keys nor its projected attributes changed


def record_write_units(
    step: Step, sizes: Mapping[str, int], indexes: tuple[IndexModel, ...] = INDEXES
) -> int:
    """WRUs of one put that changes the record's status: the table (a replacement costs the
    larger of the old and the new item) plus every GSI it touches."""
    before = sizes[step[0]] if step[0] is not None else None
    after = sizes[step[1]]
    units = write_units(max(before or 0, after))
    return units + sum(index_write_units(index, before, after, step) for index in indexes)


def record_steps(workload: Workload) -> list[Step]:
    """The puts of one image's record: PENDING (unless the upload was presigned: then the
    worker's first put inserts the record as PROCESSING), PROCESSING, PROCESSED."""
    if workload.pending_write:
        return [(None, "PENDING"), ("PENDING", "PROCESSING"), ("PROCESSING", "PROCESSED")]
    return [(None, "PROCESSING"), ("PROCESSING", "PROCESSED")]


def record_writes_per_image(workload: Workload, indexes: tuple[IndexModel, ...] = INDEXES) -> int:
    steps = record_steps(workload)
    return sum(record_write_units(step, workload.record_bytes, indexes) for step in steps)


def stored_bytes_per_image(workload: Workload, indexes: tuple[IndexModel, ...] = INDEXES) -> int:
    """A PROCESSED record in the table and its GSIs, DynamoDB's 100 bytes per item included."""
    item = workload.record_bytes["PROCESSED"] + 100
    return item + sum(index.entry(item) for index in indexes if index.present("PROCESSED"))


def dynamodb_lines(w: Workload, v: Volumes) -> list[LineItem]:
    """The record's puts (and their GSI writes), its reads, and what the table holds."""
    item_bytes = w.record_bytes["PROCESSED"] + 100  # DynamoDB adds 100 bytes per item
    return [
        LineItem(
            "dynamodb.writes",
            "DynamoDB",
            f"writes: {len(record_steps(w))} puts of the record + its GSIs",
            v.images * record_writes_per_image(w),
            "WRU",
            prices.DYNAMODB_PER_MILLION_WRU,
            1_000_000,
        ),
        LineItem(
            "dynamodb.reads",
            "DynamoDB",
            "reads: worker + 1 per API call",
            v.images * (1 + w.api_calls_per_image),
            "RRU",
            prices.DYNAMODB_PER_MILLION_RRU,
            1_000_000,
        ),
        LineItem(
            "dynamodb.storage",
            "DynamoDB",
            f"storage: table + {len(INDEXES)} GSIs",
            v.stored * stored_bytes_per_image(w) / GB,
            "GB-month",
            prices.DYNAMODB_PER_GB_MONTH,
        ),
        LineItem(
            "dynamodb.pitr",
            "DynamoDB",
            "point-in-time recovery",
            v.stored * item_bytes / GB,
            "GB-month",
            prices.DYNAMODB_PITR_PER_GB_MONTH,
        ),
    ]
