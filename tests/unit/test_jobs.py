"""The typed jobs: the bodies queues hold (written and read as earlier versions did), their
parse, their dedup ids and the give-up rule."""

from __future__ import annotations

from typing import Any

import pytest

from imgpipe.core import jobs
from imgpipe.core.model import ObjectEvent, ObjectInfo

EVENT = ObjectEvent(key="uploads/a b/café.jpg", sequencer="0062FA", size=1234, etag="0123abcd")


def test_bodies_are_the_json_queues_already_hold() -> None:
    # Messages queued by earlier versions wait in SQLite, in SQS and in dead-letter queues:
    # the same jobs must make the same bodies, and those bodies must parse back.
    assert jobs.Created(EVENT).body() == {
        "type": "created",
        "key": "uploads/a b/café.jpg",
        "sequencer": "0062FA",
        "size": 1234,
        "etag": "0123abcd",
        "force": False,
    }
    assert jobs.Removed("uploads/x.jpg").body() == {"type": "removed", "key": "uploads/x.jpg"}
    assert jobs.Rerender("uploads/x.jpg", "h1").body() == {
        "type": "rerender",
        "key": "uploads/x.jpg",
    }
    for job in (jobs.Created(EVENT), jobs.Removed("uploads/x.jpg"), jobs.Rerender("uploads/y")):
        assert jobs.parse(job.body()) == job
        assert job.key in (EVENT.key, "uploads/x.jpg", "uploads/y")


def test_dedup_ids_are_the_ones_earlier_versions_queued_with() -> None:
    # A job still waiting under an old dedup id must keep a new copy of it out.
    assert jobs.Created(EVENT).dedup_id == "uploads/a b/café.jpg\x000062FA\x000"
    forced = jobs.Created(EVENT.model_copy(update={"force": True}))
    assert forced.dedup_id == "uploads/a b/café.jpg\x000062FA\x001"
    assert jobs.Removed("uploads/x.jpg").dedup_id == "removed\x00uploads/x.jpg"
    assert jobs.Rerender("uploads/x.jpg", "h1").dedup_id == "rerender\x00uploads/x.jpg\x00h1"
    # the sender's renditionHash is not part of the job a worker runs
    assert jobs.Rerender("uploads/x.jpg", "h1") == jobs.Rerender("uploads/x.jpg", "h2")


@pytest.mark.parametrize(
    "body",
    [{}, {"type": "noop"}, {"type": None, "key": "uploads/a.jpg"}, {"key": "uploads/a.jpg"}],
)
def test_a_body_of_no_known_type_is_an_unknown_job(body: dict[str, Any]) -> None:
    with pytest.raises(jobs.UnknownJobError, match="unknown type"):
        jobs.parse(body)


@pytest.mark.parametrize(
    "body",
    [
        {"type": "created", "key": "uploads/a.jpg"},  # no sequencer
        {"type": "created", "key": "uploads/a.jpg", "sequencer": "1", "size": "big"},
        {"type": "removed"},
        {"type": "rerender", "key": 7},
    ],
)
def test_a_known_type_with_wrong_fields_is_malformed(body: dict[str, Any]) -> None:
    with pytest.raises(jobs.MalformedJobError) as caught:
        jobs.parse(body)
    assert not isinstance(caught.value, jobs.UnknownJobError)
    assert str(body["type"]) in str(caught.value)


def test_the_created_event_of_an_object_as_it_is_now() -> None:
    info = ObjectInfo(
        key="uploads/a.jpg", size=10, etag="e", version_id="v", last_modified="2026-01-01Z"
    )
    event = jobs.event_from_info(info, force=True)
    assert (event.key, event.sequencer, event.size, event.etag) == ("uploads/a.jpg", "0", 10, "e")
    assert (event.version_id, event.event_time, event.force) == ("v", "2026-01-01Z", True)


def test_the_last_allowed_attempt_gives_up() -> None:
    assert [jobs.gives_up(attempt, 3) for attempt in (1, 2, 3, 4)] == [False, False, True, True]
