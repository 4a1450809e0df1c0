"""The record's state machine, pure: stale, duplicate, busy and new-version decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from imgpipe.core import lifecycle
from imgpipe.core.keys import compare_sequencers, image_id_for
from imgpipe.core.model import ImageMetadata, ImageRecord, ObjectEvent, Rendition, Status

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
KEY = "uploads/abc/IMG_0001.jpg"
META = ImageMetadata(
    contentType="image/jpeg",
    format="jpeg",
    fileSize=10,
    width=4,
    height=3,
    hasAlpha=False,
    colorSpace="srgb",
    sha256="0" * 64,
)


def event(seq: str, force: bool = False) -> ObjectEvent:
    return ObjectEvent(key=KEY, sequencer=seq, force=force)


def start(current: ImageRecord | None, ev: ObjectEvent, now: datetime = NOW) -> lifecycle.Decision:
    return lifecycle.decide_start(current, ev, bucket="b", now=now, lease_s=60)


def claimed(seq: str) -> ImageRecord:
    decision = start(None, event(seq))
    assert isinstance(decision, lifecycle.Start)
    return decision.record


def test_first_event_starts_processing_with_a_lease() -> None:
    record = claimed("0a")
    assert record.status is Status.PROCESSING
    assert record.image_id == image_id_for(KEY)
    assert record.attempts == 1
    assert record.lease_until is not None and record.lease_until > record.updated_at


def test_duplicate_of_a_finished_version_does_no_work() -> None:
    done = lifecycle.processed(claimed("0a"), META, [], NOW, 5)
    assert start(done, event("0a")) == lifecycle.Skip("duplicate")


def test_forced_event_reprocesses_the_same_version() -> None:
    done = lifecycle.processed(claimed("0a"), META, [], NOW, 5)
    decision = start(done, event("0a", force=True))
    assert isinstance(decision, lifecycle.Start)
    assert decision.record.attempts == 2


def test_older_event_never_overwrites_a_newer_result() -> None:
    done = lifecycle.processed(claimed("ff"), META, [], NOW, 5)
    assert start(done, event("0f")) == lifecycle.Skip("stale")
    # hex sequencers of unequal length compare as numbers: "100" > "ff"
    assert isinstance(start(done, event("100")), lifecycle.Start)


def test_held_lease_makes_the_image_busy_until_it_lapses() -> None:
    running = claimed("0a")
    assert isinstance(start(running, event("0b")), lifecycle.Busy)
    assert isinstance(start(running, event("0a")), lifecycle.Busy)
    later = NOW + timedelta(seconds=61)
    decision = start(running, event("0a"), now=later)
    assert isinstance(decision, lifecycle.Start)
    assert decision.record.attempts == 2


def test_new_version_resets_metadata_and_counts_attempts_afresh() -> None:
    rendition = Rendition(
        name="thumb", format="jpeg", key="renditions/x/thumb.jpg", width=4, height=3, bytes=9
    )
    old = lifecycle.processed(claimed("0a"), META, [rendition], NOW, 5)
    decision = start(old, event("0b"))
    assert isinstance(decision, lifecycle.Start)
    assert decision.record.sequencer == "0b"
    assert decision.record.attempts == 1
    assert decision.record.sha256 is None
    # old renditions stay listed until the new ones replace them, so they can be cleaned up
    assert decision.record.renditions == [rendition]


def test_transient_failure_is_retried_by_a_duplicate_event() -> None:
    gave_up = lifecycle.failed(claimed("0a"), "worker_crashed", "died", NOW)
    assert isinstance(start(gave_up, event("0a")), lifecycle.Start)
    bad_image = lifecycle.failed(claimed("0a"), "corrupt_image", "truncated", NOW)
    assert start(bad_image, event("0a")) == lifecycle.Skip("duplicate")


def test_pending_record_only_for_newer_versions() -> None:
    done = lifecycle.processed(claimed("0b"), META, [], NOW, 5)
    assert lifecycle.decide_pending(done, event("0a"), "b", NOW) is None
    fresh = lifecycle.decide_pending(done, event("0c"), "b", NOW)
    assert fresh is not None and fresh.status is Status.PENDING and fresh.sequencer == "0c"


# A record under any interleaving of deliveries, duplicates, reorderings and crashes.
step = st.tuples(
    st.sampled_from(["deliver", "crash"]),
    st.integers(min_value=1, max_value=6),  # which version the event is about
    st.integers(min_value=0, max_value=200),  # seconds that pass first
)


@settings(max_examples=300, deadline=None)
@given(st.lists(step, min_size=1, max_size=25))
def test_state_machine_converges_on_the_newest_version(steps: list[tuple[str, int, int]]) -> None:
    # GIVEN any sequence of events for versions 1..6 of one key, some crashing mid-work
    record: ImageRecord | None = None
    now = NOW
    delivered: set[int] = set()
    for action, version, wait in steps:
        now += timedelta(seconds=wait)
        delivered.add(version)
        decision = start(record, event(format(version, "x")), now)
        if isinstance(decision, lifecycle.Start):
            record = decision.record
            if action == "deliver":
                record = lifecycle.processed(record, META, [], now, 1)
        elif isinstance(decision, lifecycle.Skip):
            assert record is not None
            assert compare_sequencers(format(version, "x"), record.sequencer) <= 0
    # WHEN every event is redelivered once more, after every lease has lapsed (the queue's
    # at-least-once promise), in order
    now += timedelta(hours=1)
    for version in sorted(delivered):
        decision = start(record, event(format(version, "x")), now)
        if isinstance(decision, lifecycle.Start):
            record = lifecycle.processed(decision.record, META, [], now, 1)
    # THEN the one record describes the newest version, finished
    assert record is not None
    assert int(record.sequencer, 16) == max(delivered)
    assert record.status is Status.PROCESSED


def test_a_head_without_sequencer_names_its_version_by_id() -> None:
    # GIVEN a record made from an S3 notification (real sequencer, version "v2")
    done = lifecycle.processed(
        claimed("0a").model_copy(update={"version_id": "v2", "sequencer": "00ab"}),
        META,
        [],
        NOW,
        5,
    )
    # WHEN a reprocess built from a HEAD (no sequencer: "0") names the same version
    decision = start(done, ObjectEvent(key=KEY, sequencer="0", version_id="v2", force=True))
    # THEN it is that version, and the record keeps the real sequencer
    assert isinstance(decision, lifecycle.Start)
    assert decision.record.sequencer == "00ab"
    # AND a HEAD-made event for another version cannot be ordered: it is stale
    other = ObjectEvent(key=KEY, sequencer="0", version_id="v1", force=True)
    assert start(done, other) == lifecycle.Skip("stale")
    # AND the notification for the very version a PENDING record was made from adopts its
    # real sequencer, so that an older version's late event stays older
    pending = lifecycle.new_version(ObjectEvent(key=KEY, sequencer="0", version_id="v3"), "b", NOW)
    notified = start(pending, ObjectEvent(key=KEY, sequencer="00ff", version_id="v3"))
    assert isinstance(notified, lifecycle.Start) and notified.record.sequencer == "00ff"
    late = ObjectEvent(key=KEY, sequencer="00aa", version_id="v1")
    assert start(notified.record.model_copy(update={"lease_until": None}), late) == (
        lifecycle.Skip("stale")
    )


def test_unversioned_bucket_matches_by_etag() -> None:
    done = lifecycle.processed(
        claimed("0a").model_copy(update={"etag": "e1", "version_id": None}), META, [], NOW, 5
    )
    assert start(done, ObjectEvent(key=KEY, sequencer="0", etag="e1")) == lifecycle.Skip(
        "duplicate"
    )
    assert start(done, ObjectEvent(key=KEY, sequencer="0", etag="e2")) == lifecycle.Skip("stale")


def test_an_upload_never_replaces_a_record_being_rendered() -> None:
    running = claimed("0a")  # PROCESSING, lease held
    assert lifecycle.decide_pending(running, event("0b"), "b", NOW) is None
    later = NOW + timedelta(seconds=61)  # the lease lapsed: its worker died
    fresh = lifecycle.decide_pending(running, event("0b"), "b", later)
    assert fresh is not None and fresh.sequencer == "0b"
