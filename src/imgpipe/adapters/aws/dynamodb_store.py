"""The DynamoDB metadata store: one item per image, compare-and-set on `revision`.

An item holds `imageId` (the table key), `revision` (N), `doc` (the record as JSON) and the
keys of two sharded GSIs, so expressions only ever name these attributes, always through
`#placeholders` (DynamoDB reserves words like `status`, `key` and `size`; moto does not check).

- `byStatus`: `gsi1pk` = "{status}#{shard}", `gsi1sk` = "{uploadedAt}#{imageId}"
- `byUpload`: `gsi2pk` = "all#{shard}",      `gsi2sk` = "{uploadedAt}#{imageId}"

`shard` = crc32(imageId) % 8 spreads each status over 8 partitions (no hot key for PENDING).
A list queries every shard newest first and merges; the cursor is the last (uploadedAt,
imageId) returned, which is each shard's position too: every shard resumes strictly below it.
GSIs are eventually consistent, so a record may reach a list a moment after it was written.

Near-duplicates (core.similarity) add sparse GSIs, present only on records that carry the
attributes (so a PENDING record is in none of them):
- `bySha256`: `sha256`, sorted by `gsi2sk` (earliest upload first); KEYS_ONLY.
- `byPhash0..3`: `phb{i}` = band i of the pHash (4 hex digits); they project `phash` only,
  so a lookup reads ~50-byte entries and a status change (which alters neither) writes none.
A near-duplicate query is 4 x 17 Query calls at most (run 8 at a time), each capped at
CANDIDATES_PER_LOOKUP entries. Deletes leave the GSIs on their own; they are eventually
consistent, so callers re-read the records they are given (ImageService.similar does).

Every write is a whole item from `to_item`, so a record carries the index keys of the version
that last wrote it: one written before the near-duplicate indexes has no `sha256`, `phash` or
`phb*` attributes, and no GSI lists it. `backfill_index_keys` scans the table and adds what
`to_item` would write and the item lacks, conditional on the revision it read (a newer write
wins, and carries its keys anyway); the doc and the revision stay as they are.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import heapq
import itertools
import json
import logging
import zlib
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from imgpipe.adapters.aws.client_errors import error_code, transient_errors
from imgpipe.core import similarity
from imgpipe.core.errors import InvalidRequestError
from imgpipe.core.model import ImageRecord, RecordPage, Status
from imgpipe.core.similarity import PhashHit

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, QueryInputTypeDef

SHARDS = 8
BY_STATUS = "byStatus"
BY_UPLOAD = "byUpload"

# Every expression this store sends; a unit test checks them against DynamoDB's reserved words.
INSERT_CONDITION = "attribute_not_exists(#id)"
UPDATE_CONDITION = "#rev = :expected"
PAGE_KEY_CONDITION = "#pk = :pk AND #sk < :after"
FIRST_PAGE_KEY_CONDITION = "#pk = :pk"
EXPRESSIONS = (INSERT_CONDITION, UPDATE_CONDITION, PAGE_KEY_CONDITION, FIRST_PAGE_KEY_CONDITION)
ID_NAMES = {"#id": "imageId"}
REVISION_NAMES = {"#rev": "revision"}
BY_SHA256 = "bySha256"
BAND_INDEXES = tuple(f"byPhash{band}" for band in range(similarity.BANDS))
BAND_ATTRIBUTES = tuple(f"phb{band}" for band in range(similarity.BANDS))
INDEX_NAMES: dict[str, dict[str, str]] = {
    BY_STATUS: {"#pk": "gsi1pk", "#sk": "gsi1sk"},
    BY_UPLOAD: {"#pk": "gsi2pk", "#sk": "gsi2sk"},
    BY_SHA256: {"#pk": "sha256", "#sk": "gsi2sk"},
    **{index: {"#pk": attr} for index, attr in zip(BAND_INDEXES, BAND_ATTRIBUTES, strict=True)},
}
LOOKUP_THREADS = 8


def similarity_indexes() -> list[dict[str, Any]]:
    """The near-duplicate GSIs as CreateTable takes them (infra/template.yaml declares the
    same; a unit test holds the two together)."""
    sha: dict[str, Any] = {
        "IndexName": BY_SHA256,
        "KeySchema": [
            {"AttributeName": "sha256", "KeyType": "HASH"},
            {"AttributeName": "gsi2sk", "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    }
    bands = [
        {
            "IndexName": index,
            "KeySchema": [{"AttributeName": attr, "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["phash"]},
        }
        for index, attr in zip(BAND_INDEXES, BAND_ATTRIBUTES, strict=True)
    ]
    return [sha, *bands]


SIMILARITY_KEY_ATTRIBUTES = ("sha256", *BAND_ATTRIBUTES)
# What to_item writes beside the record itself: the GSIs' keys and what they project.
RECORD_ATTRIBUTES = frozenset({"imageId", "revision", "doc"})
BACKFILL_PAGE = 100


@dataclass(frozen=True)
class BackfillPage:
    """One scan page of backfill_index_keys: what it read and did, and where to go on."""

    scanned: int
    rewritten: int
    raced: int  # changed or deleted since the scan read it: the newer write has its keys
    unreadable: int
    resume: str | None  # the imageId to pass as `start` to go on; None at the table's end


def shard_of(image_id: str) -> int:
    """Stable across processes and Python versions (unlike hash())."""
    return zlib.crc32(image_id.encode("utf-8")) % SHARDS


def sort_key(record: ImageRecord) -> str:
    return f"{record.uploaded_at}#{record.image_id}"


def to_item(record: ImageRecord, revision: int) -> dict[str, AttributeValueTypeDef]:
    doc = record.to_item()
    doc.pop("revision", None)
    shard = shard_of(record.image_id)
    sk = sort_key(record)
    return {
        "imageId": {"S": record.image_id},
        "revision": {"N": str(revision)},
        "doc": {"S": json.dumps(doc, separators=(",", ":"), ensure_ascii=False)},
        "gsi1pk": {"S": f"{record.status.value}#{shard}"},
        "gsi1sk": {"S": sk},
        "gsi2pk": {"S": f"all#{shard}"},
        "gsi2sk": {"S": sk},
        **similarity_keys(record),
    }


def similarity_keys(record: ImageRecord) -> dict[str, AttributeValueTypeDef]:
    """The sparse keys of the near-duplicate GSIs: only what the record carries."""
    keys: dict[str, AttributeValueTypeDef] = {}
    if record.sha256:
        keys["sha256"] = {"S": record.sha256}
    if similarity.valid_phash(record.phash):
        keys["phash"] = {"S": record.phash.lower()}
        for attr, value in zip(BAND_ATTRIBUTES, similarity.bands(record.phash), strict=True):
            keys[attr] = {"S": value}
    return keys


def from_item(item: Mapping[str, Any]) -> ImageRecord:
    doc = json.loads(item["doc"]["S"])
    doc["revision"] = int(item["revision"]["N"])
    return ImageRecord.model_validate(doc)


def encode_cursor(record: ImageRecord) -> str:
    raw = json.dumps([record.uploaded_at, record.image_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_cursor(cursor: str) -> str:
    """The sort key every shard resumes below; InvalidRequestError for anything else."""
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except (binascii.Error, ValueError, UnicodeError) as exc:
        raise InvalidRequestError("invalid cursor") from exc
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise InvalidRequestError("invalid cursor")
    return f"{value[0]}#{value[1]}"


class DynamoMetadataStore:
    """MetadataStore over one DynamoDB table laid out as the SAM template declares it."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self.client = client
        self.table = table

    def get(self, image_id: str) -> ImageRecord | None:
        with transient_errors(f"GetItem {self.table}"):
            found = self.client.get_item(
                TableName=self.table, Key={"imageId": {"S": image_id}}, ConsistentRead=True
            )
        item = found.get("Item")
        return from_item(item) if item else None

    def stamp(self, image_id: str) -> tuple[int, str] | None:
        record = self.get(image_id)
        return None if record is None else (record.revision, record.uploaded_at)

    def put(self, record: ImageRecord, expected_revision: int | None) -> ImageRecord | None:
        revision = (expected_revision or 0) + 1
        args: dict[str, Any] = {"TableName": self.table, "Item": to_item(record, revision)}
        if expected_revision is None:
            args["ConditionExpression"] = INSERT_CONDITION
            args["ExpressionAttributeNames"] = ID_NAMES
        else:
            args["ConditionExpression"] = UPDATE_CONDITION
            args["ExpressionAttributeNames"] = REVISION_NAMES
            args["ExpressionAttributeValues"] = {":expected": {"N": str(expected_revision)}}
        try:
            with transient_errors(f"PutItem {self.table}"):
                self.client.put_item(**args)
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise
        return record.model_copy(update={"revision": revision})

    def delete(self, image_id: str) -> None:
        with transient_errors(f"DeleteItem {self.table}"):
            self.client.delete_item(TableName=self.table, Key={"imageId": {"S": image_id}})

    # -- index keys ------------------------------------------------------------------------

    def backfill_index_keys(
        self, start: str | None = None, page_size: int = BACKFILL_PAGE
    ) -> Iterator[BackfillPage]:
        """Add the index keys that records written by older versions lack, a scan page at a
        time (resumable: each page names where the next one starts)."""
        scan: dict[str, Any] = {"TableName": self.table, "Limit": page_size}
        if start is not None:
            scan["ExclusiveStartKey"] = {"imageId": {"S": start}}
        while True:
            with transient_errors(f"Scan {self.table}"):
                found = self.client.scan(**scan)
            counts = {"rewritten": 0, "raced": 0, "unreadable": 0}
            for item in found.get("Items", []):
                outcome = self.backfill_item(item)
                if outcome:
                    counts[outcome] += 1
            last = found.get("LastEvaluatedKey")
            resume = last["imageId"]["S"] if last else None
            yield BackfillPage(len(found.get("Items", [])), resume=resume, **counts)
            if not last:
                return
            scan["ExclusiveStartKey"] = last

    def backfill_item(self, item: Mapping[str, Any]) -> str | None:
        """What became of the item: rewritten, raced or unreadable; None if it has every key."""
        try:
            record = from_item(item)
        except (ValueError, KeyError, TypeError):
            log.warning("backfill: record %s is not readable; left as it is", item.get("imageId"))
            return "unreadable"
        revision = int(item["revision"]["N"])
        wanted = to_item(record, revision)
        missing = {k: v for k, v in wanted.items() if k not in item and k not in RECORD_ATTRIBUTES}
        if not missing:
            return None
        names = {f"#k{i}": name for i, name in enumerate(missing)}
        values: dict[str, AttributeValueTypeDef] = {
            f":k{i}": v for i, v in enumerate(missing.values())
        }
        try:
            with transient_errors(f"UpdateItem {self.table}"):
                self.client.update_item(
                    TableName=self.table,
                    Key={"imageId": {"S": record.image_id}},
                    UpdateExpression="SET "
                    + ", ".join(f"#k{i} = :k{i}" for i in range(len(missing))),
                    ConditionExpression=UPDATE_CONDITION,
                    ExpressionAttributeNames={**names, **REVISION_NAMES},
                    ExpressionAttributeValues={**values, ":expected": {"N": str(revision)}},
                )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return "raced"
            raise
        return "rewritten"

    # -- listing ---------------------------------------------------------------------------

    def _partition(self, status: Status | None, shard: int) -> tuple[str, str]:
        if status is None:
            return BY_UPLOAD, f"all#{shard}"
        return BY_STATUS, f"{status.value}#{shard}"

    def _query(
        self, status: Status | None, shard: int, after: str | None, want: int
    ) -> Iterator[tuple[str, ImageRecord]]:
        """Up to `want` records of one shard, newest first, below `after`."""
        index, pk = self._partition(status, shard)
        names = INDEX_NAMES[index]
        values: dict[str, AttributeValueTypeDef] = {":pk": {"S": pk}}
        if after is not None:
            values[":after"] = {"S": after}
        query: QueryInputTypeDef = {
            "TableName": self.table,
            "IndexName": index,
            "KeyConditionExpression": PAGE_KEY_CONDITION if after else FIRST_PAGE_KEY_CONDITION,
            # AWS refuses a name that no expression uses: no #sk on the first page.
            "ExpressionAttributeNames": names if after else {"#pk": names["#pk"]},
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
            "Limit": want,
        }
        given = 0
        while given < want:
            with transient_errors(f"Query {self.table}/{index}"):
                found = self.client.query(**query)
            for item in found.get("Items", []):
                given += 1
                yield item[names["#sk"]]["S"], from_item(item)
            last = found.get("LastEvaluatedKey")
            if not last:
                return
            query["ExclusiveStartKey"] = last
            query["Limit"] = want - given

    def list(self, status: Status | None, limit: int, cursor: str | None) -> RecordPage:
        if limit < 1:
            raise InvalidRequestError("limit must be at least 1")
        after = decode_cursor(cursor) if cursor is not None else None
        # One more than a page from each shard tells whether another page follows.
        per_shard = [list(self._query(status, s, after, limit + 1)) for s in range(SHARDS)]
        merged = heapq.merge(*per_shard, key=itemgetter(0), reverse=True)
        page = [record for _, record in itertools.islice(merged, limit + 1)]
        more = len(page) > limit
        page = page[:limit]
        return RecordPage(items=page, next_cursor=encode_cursor(page[-1]) if more else None)

    # -- near-duplicates -------------------------------------------------------------------

    def _lookup(
        self, index: str, value: str, want: int, forward: bool = True
    ) -> builtins.list[dict[str, Any]]:
        """Up to `want` entries of one GSI partition (`#pk = value`), in sort-key order."""
        query: QueryInputTypeDef = {
            "TableName": self.table,
            "IndexName": index,
            "KeyConditionExpression": FIRST_PAGE_KEY_CONDITION,
            "ExpressionAttributeNames": {"#pk": INDEX_NAMES[index]["#pk"]},
            "ExpressionAttributeValues": {":pk": {"S": value}},
            "ScanIndexForward": forward,
            "Limit": want,
        }
        items: list[dict[str, Any]] = []
        while len(items) < want:
            with transient_errors(f"Query {self.table}/{index}"):
                found = self.client.query(**query)
            items.extend(found.get("Items", []))
            last = found.get("LastEvaluatedKey")
            if not last:
                break
            query["ExclusiveStartKey"] = last
            query["Limit"] = want - len(items)
        return items[:want]

    def with_sha256(self, sha256: str, limit: int) -> builtins.list[str]:
        return [item["imageId"]["S"] for item in self._lookup(BY_SHA256, sha256, limit)]

    def near_phash(self, phash: str, max_distance: int, limit: int) -> builtins.list[PhashHit]:
        def lookup(probe: tuple[int, str]) -> list[dict[str, Any]]:
            band, value = probe
            return self._lookup(BAND_INDEXES[band], value, similarity.CANDIDATES_PER_LOOKUP)

        probes = similarity.probes(phash, max_distance)
        with ThreadPoolExecutor(min(LOOKUP_THREADS, len(probes))) as pool:
            found = [item for items in pool.map(lookup, probes) for item in items]
        candidates = {item["imageId"]["S"]: item["phash"]["S"] for item in found}
        return similarity.nearest(candidates, phash, max_distance, limit)

    def count_by_status(self) -> dict[Status, int]:
        """Select=COUNT per status and shard (4 x 8 small queries: fine for a dashboard)."""
        counts = dict.fromkeys(Status, 0)
        names = {"#pk": INDEX_NAMES[BY_STATUS]["#pk"]}
        for status in Status:
            for shard in range(SHARDS):
                query: QueryInputTypeDef = {
                    "TableName": self.table,
                    "IndexName": BY_STATUS,
                    "KeyConditionExpression": FIRST_PAGE_KEY_CONDITION,
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": {":pk": {"S": f"{status.value}#{shard}"}},
                    "Select": "COUNT",
                }
                while True:
                    with transient_errors(f"Query {self.table}/{BY_STATUS}"):
                        found = self.client.query(**query)
                    counts[status] += int(found.get("Count", 0))
                    last = found.get("LastEvaluatedKey")
                    if not last:
                        break
                    query["ExclusiveStartKey"] = last
        return counts
