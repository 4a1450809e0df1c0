"""The soak's judge (soak/check.py): what the client saw, the records and the files on disk
give each invariant's count, as docs/operations.md (Soak) defines them."""

from __future__ import annotations

from typing import Any

from soak.check import Finding, judge_records
from soak.client import Attempt, Outcome
from soak.plan import PROCESSED, Upload

ACCEPTED = Attempt(answered=True, ok=True, what="202")
REFUSED = Attempt(answered=True, ok=False, what="503")
NO_ANSWER = Attempt(answered=False, ok=False, what="ReadTimeout")


def upload(seq: int, expected: str = PROCESSED) -> Upload:
    return Upload(
        seq, f"soak-{seq:05d}-x.jpg", "multipart", "jpeg", expected, "image/jpeg", b"\xff\xd8"
    )


def outcome(seq: int, *attempts: Attempt, expected: str = PROCESSED) -> Outcome:
    return Outcome(upload(seq, expected), "phase", list(attempts), image_id=f"id{seq}")


def record(seq: int, image_id: str | None = None, **fields: Any) -> dict[str, Any]:
    """A PROCESSED record of upload `seq` with one rendition."""
    image_id = image_id or f"id{seq}"
    return {
        "imageId": image_id,
        "key": f"uploads/{image_id}/soak-{seq:05d}-x.jpg",
        "status": "PROCESSED",
        "error": None,
        "renditions": [{"key": f"renditions/{image_id}/thumb.jpg", "bytes": 10}],
        **fields,
    }


def on_disk(*records: dict[str, Any]) -> dict[str, int]:
    files = {r["key"]: 100 for r in records}
    files |= {x["key"]: x["bytes"] for r in records for x in r["renditions"]}
    return files


def counts(findings: list[Finding]) -> dict[str, int]:
    return {f.name: f.count for f in findings}


def test_a_clean_run_breaks_nothing() -> None:
    records = [record(1), record(2, status="FAILED", renditions=[], error={"code": "x"})]
    findings = judge_records(
        [outcome(1, REFUSED, ACCEPTED), outcome(2, ACCEPTED, expected="x")],
        records,
        on_disk(*records),
    )
    assert set(counts(findings).values()) == {0}


def test_an_accepted_upload_without_a_finished_record_or_its_renditions_is_lost() -> None:
    pending = record(2, status="PENDING", renditions=[])
    cut = record(3)
    files = on_disk(pending, cut) | {"renditions/id3/thumb.jpg": 4}  # written in part
    findings = judge_records(
        [outcome(1, ACCEPTED), outcome(2, ACCEPTED), outcome(3, ACCEPTED)], [pending, cut], files
    )
    lost = findings[0]
    assert (lost.name, lost.count) == ("lost", 3)
    assert "no record" in lost.examples[0]
    assert "still PENDING" in lost.examples[1]
    assert "renditions missing" in lost.examples[2]


def test_a_retry_that_made_a_second_image_is_a_duplicate_and_not_lost() -> None:
    first, second = record(1, "id-first"), record(1)
    findings = judge_records(
        [outcome(1, NO_ANSWER, ACCEPTED)], [first, second], on_disk(first, second)
    )
    assert counts(findings) == {
        "lost": 0,
        "duplicated": 1,
        "ghost": 0,
        "orphaned": 0,
        "hostile not FAILED with its code": 0,
        "valid not PROCESSED": 0,
        "dead-lettered": 0,
    }


def test_a_record_of_an_upload_refused_every_time_is_a_ghost_but_not_of_an_unanswered_one() -> None:
    refused, unanswered = record(1), record(2)
    findings = judge_records(
        [outcome(1, REFUSED, REFUSED), outcome(2, REFUSED, NO_ANSWER)],
        [refused, unanswered],
        on_disk(refused, unanswered),
    )
    assert counts(findings)["ghost"] == 1
    assert counts(findings)["lost"] == 0  # neither was accepted


def test_files_no_record_names_and_records_without_their_original_are_orphaned() -> None:
    kept = record(1)
    files = on_disk(kept) | {"uploads/zz/soak-00009-x.jpg": 5, "renditions/zz/thumb.jpg": 5}
    del files[kept["key"]]
    findings = judge_records([outcome(1, ACCEPTED)], [kept], files)
    orphaned = next(f for f in findings if f.name == "orphaned")
    assert orphaned.count == 3


def test_a_hostile_file_must_fail_with_its_own_code_and_a_valid_one_must_be_processed() -> None:
    wrong_code = record(1, status="FAILED", renditions=[], error={"code": "corrupt_image"})
    failed_valid = record(2, status="FAILED", renditions=[], error={"code": "corrupt_image"})
    findings = judge_records(
        [outcome(1, ACCEPTED, expected="too_many_pixels"), outcome(2, ACCEPTED)],
        [wrong_code, failed_valid],
        on_disk(wrong_code, failed_valid),
    )
    assert counts(findings)["hostile not FAILED with its code"] == 1
    assert counts(findings)["valid not PROCESSED"] == 1


def test_a_file_failed_by_retries_running_out_is_noted_as_dead_lettered_not_as_a_violation() -> (
    None
):
    gave_up = record(1, status="FAILED", renditions=[], error={"code": "store_unavailable"})
    hostile_gave_up = record(2, status="FAILED", renditions=[], error={"code": "image_busy"})
    findings = judge_records(
        [outcome(1, ACCEPTED), outcome(2, ACCEPTED, expected="corrupt_image")],
        [gave_up, hostile_gave_up],
        on_disk(gave_up, hostile_gave_up),
    )
    assert counts(findings)["dead-lettered"] == 2
    assert not any(f.broken for f in findings)
