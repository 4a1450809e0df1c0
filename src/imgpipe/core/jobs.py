"""The jobs the queue carries, as typed messages: their bodies, their parse, their dedup ids.

Three kinds, each a JSON object with a `type`:
- `created`: process an original (an upload, a backfill, a reprocess: `force`); the rest of
  the body is the ObjectEvent's fields;
- `removed`: the original of `key` is gone: drop its renditions and record;
- `rerender`: bring the record of `key` up to the receiving worker's rendition settings.

The bodies are what queues already hold (local SQLite rows, SQS messages waiting, dead
letters to redrive), so `body()` writes exactly the JSON earlier versions wrote and `parse`
reads it. A body of another type, or one whose fields are missing or wrong, is a
MalformedJobError: no retry makes it runnable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from imgpipe.core.model import ObjectEvent, ObjectInfo

CREATED = "created"
REMOVED = "removed"
RERENDER = "rerender"
KINDS = frozenset({CREATED, REMOVED, RERENDER})


class MalformedJobError(ValueError):
    """A queue body that is no job: a known type with missing or wrong fields."""


class UnknownJobError(MalformedJobError):
    """A queue body whose `type` names no job (or that has none)."""


@dataclass(frozen=True)
class Created:
    """Process the original `event` names (a new object, or again with `force`)."""

    event: ObjectEvent

    @property
    def key(self) -> str:
        return self.event.key

    @property
    def dedup_id(self) -> str:
        # One job per version of an original, and one forced reprocess beside it.
        event = self.event
        return f"{event.key}\x00{event.sequencer}\x00{int(event.force)}"

    def body(self) -> dict[str, Any]:
        return {"type": CREATED, **self.event.model_dump(mode="json", exclude_none=True)}


@dataclass(frozen=True)
class Removed:
    """The original of `key` was deleted by other means: drop its renditions and record."""

    key: str

    @property
    def dedup_id(self) -> str:
        return f"{REMOVED}\x00{self.key}"

    def body(self) -> dict[str, Any]:
        return {"type": REMOVED, "key": self.key}


@dataclass(frozen=True)
class Rerender:
    """Bring the record of `key` up to the receiving worker's rendition settings."""

    key: str
    # The renditionHash of the sender's settings. Not in the body: the receiving worker
    # renders to its own settings. It is in the dedup id, so that a job for the same key and
    # settings still waiting is not queued twice.
    rendition_hash: str = field(default="", compare=False)

    @property
    def dedup_id(self) -> str:
        return f"{RERENDER}\x00{self.key}\x00{self.rendition_hash}"

    def body(self) -> dict[str, Any]:
        return {"type": RERENDER, "key": self.key}


Job = Created | Removed | Rerender


def parse(body: Mapping[str, Any]) -> Job:
    """The job a queue body stands for; UnknownJobError or MalformedJobError if none."""
    kind = body.get("type")
    if kind not in KINDS:
        raise UnknownJobError(f"a message of unknown type {kind!r}")
    if kind == CREATED:
        fields = {k: v for k, v in body.items() if k != "type"}
        try:
            return Created(ObjectEvent.model_validate(fields))
        except ValidationError as exc:
            raise MalformedJobError(f"a created job with wrong fields: {exc}") from exc
    key = body.get("key")
    if not isinstance(key, str):
        raise MalformedJobError(f"a {kind} job without a key")
    return Removed(key) if kind == REMOVED else Rerender(key)


def event_from_info(info: ObjectInfo, *, force: bool = False) -> ObjectEvent:
    """The created event of an object as a HEAD shows it now."""
    return ObjectEvent(
        key=info.key,
        sequencer=info.sequencer or "0",
        size=info.size,
        etag=info.etag,
        version_id=info.version_id,
        event_time=info.last_modified,
        force=force,
    )


def gives_up(attempt: int, max_attempts: int) -> bool:
    """Whether a failed attempt is a job's last: the queue dead-letters it after that one (the
    local queue at its max_receives, SQS at its redrive policy's maxReceiveCount), so the
    worker marks the record FAILED first, and does not retry."""
    return attempt >= max_attempts
