"""The port contracts over the local adapters (folder, SQLite) and the in-memory fakes.

Later adapters join by adding a fixture param (or a module like this one) for their ports.
Below the contracts: what only the local adapters promise (processes, kill -9, one db file).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import imgpipe
from contract.job_queue_contract import MAX_RECEIVES, JobQueueContract
from contract.metadata_store_contract import (
    MetadataStoreContract,
    SimilarityIndexContract,
    make_record,
)
from contract.object_store_contract import ObjectStoreContract
from fakes import InMemoryJobQueue, InMemoryMetadataStore, InMemoryObjectStore
from imgpipe.adapters.local.fs_store import FilesystemObjectStore
from imgpipe.adapters.local.sqlite_queue import SqliteJobQueue
from imgpipe.adapters.local.sqlite_store import SqliteMetadataStore
from imgpipe.core.model import Status
from imgpipe.core.ports import JobQueue, MetadataStore, ObjectStore

SRC = Path(imgpipe.__file__).resolve().parents[1]


@pytest.fixture(params=["memory", "filesystem"])
def object_store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "memory":
        return InMemoryObjectStore()
    return FilesystemObjectStore(tmp_path / "data")


@pytest.fixture(params=["memory", "sqlite"])
def metadata_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MetadataStore]:
    if request.param == "memory":
        yield InMemoryMetadataStore()
        return
    with SqliteMetadataStore(tmp_path / "imgpipe.db") as store:
        yield store


@pytest.fixture(params=["memory", "sqlite", "sqlite, two runners"])
def job_queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobQueue]:
    if request.param == "memory":
        yield InMemoryJobQueue(max_receives=MAX_RECEIVES)
        return
    # two runners: the order by cost (test_queue_order.py) keeps every promise here
    runs_at_once = 2 if request.param.endswith("two runners") else 1
    with SqliteJobQueue(
        tmp_path / "imgpipe.db", max_receives=MAX_RECEIVES, runs_at_once=runs_at_once
    ) as queue:
        yield queue


class TestObjectStore(ObjectStoreContract):
    pass


class TestMetadataStore(MetadataStoreContract):
    pass


class TestSimilarityIndex(SimilarityIndexContract):
    pass


class TestJobQueue(JobQueueContract):
    pass


# -- what only the local adapters promise ---------------------------------------------------


def python(code: str, *args: str) -> subprocess.Popen[str]:
    """A child Python process that can import imgpipe."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_a_message_survives_a_worker_killed_mid_job(tmp_path: Path) -> None:
    db = tmp_path / "imgpipe.db"
    with SqliteJobQueue(db) as queue:
        queue.send({"key": "uploads/a.jpg"})

        # GIVEN a worker process that received the message
        child = python(
            """
            import sys, time
            from pathlib import Path
            from imgpipe.adapters.local.sqlite_queue import SqliteJobQueue
            queue = SqliteJobQueue(Path(sys.argv[1]))
            [message] = queue.receive(1, float(sys.argv[2]))
            print(message.message_id, message.receive_count, flush=True)
            time.sleep(60)
            """,
            str(db),
            "0.5",
        )
        try:
            assert child.stdout is not None
            line = child.stdout.readline().split()
            assert line, child.communicate()[1]
            message_id, count = line[0], int(line[1])
            assert count == 1

            # WHEN it is killed before acking
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        finally:
            if child.poll() is None:
                child.kill()
            child.communicate()

        # THEN the message stays leased until the visibility timeout, then comes back
        assert queue.receive(1, 30) == []
        deadline = time.monotonic() + 5
        while not (messages := queue.receive(1, 30)):
            assert time.monotonic() < deadline, "the message never came back"
            time.sleep(0.05)
        assert (messages[0].message_id, messages[0].receive_count) == (message_id, 2)
        assert messages[0].body == {"key": "uploads/a.jpg"}


def test_processes_receiving_at_once_never_share_a_message(tmp_path: Path) -> None:
    db = tmp_path / "imgpipe.db"
    with SqliteJobQueue(db) as queue:
        for n in range(60):
            queue.send({"n": n})
        children = [
            python(
                """
                import json, sys
                from pathlib import Path
                from imgpipe.adapters.local.sqlite_queue import SqliteJobQueue
                with SqliteJobQueue(Path(sys.argv[1])) as queue:
                    got = []
                    while messages := queue.receive(2, 30):
                        for m in messages:
                            got.append(m.body["n"])
                            queue.ack(m)
                print(json.dumps(got))
                """,
                str(db),
            )
            for _ in range(3)
        ]
        results = []
        for child in children:
            out, err = child.communicate(timeout=30)
            assert child.returncode == 0, err
            results.extend(json.loads(out))
        assert sorted(results) == list(range(60))
        assert queue.stats().visible == 0


def test_processes_writing_one_record_exactly_one_wins(tmp_path: Path) -> None:
    db = tmp_path / "imgpipe.db"
    with SqliteMetadataStore(db) as store:
        first = store.put(make_record("uploads/a.jpg"), None)
        assert first is not None
        children = [
            python(
                """
                import sys
                from pathlib import Path
                from imgpipe.adapters.local.sqlite_store import SqliteMetadataStore
                with SqliteMetadataStore(Path(sys.argv[1])) as store:
                    record = store.get(sys.argv[2])
                    written = store.put(record.model_copy(update={"attempts": 7}), 1)
                print("won" if written else "lost")
                """,
                str(db),
                first.image_id,
            )
            for _ in range(3)
        ]
        outcomes = []
        for child in children:
            out, err = child.communicate(timeout=30)
            assert child.returncode == 0, err
            outcomes.append(out.strip())
        assert sorted(outcomes) == ["lost", "lost", "won"]
        final = store.get(first.image_id)
        assert final is not None
        assert (final.revision, final.attempts) == (2, 7)


def test_the_queue_and_the_records_share_one_database(tmp_path: Path) -> None:
    db = tmp_path / "imgpipe.db"
    with SqliteMetadataStore(db) as store, SqliteJobQueue(db) as jobs:
        assert store.put(make_record("uploads/a.jpg"), None) is not None
        jobs.send({"n": 1})
        with SqliteJobQueue(db, name="other") as other:
            other.send({"n": 2})
            assert [m.body for m in other.receive(5, 30)] == [{"n": 2}]

        assert [m.body for m in jobs.receive(5, 30)] == [{"n": 1}]
        assert store.count_by_status()[Status.PENDING] == 1

    # reopened: everything was on disk
    with SqliteMetadataStore(db) as store, SqliteJobQueue(db) as jobs:
        assert store.count_by_status()[Status.PENDING] == 1
        assert jobs.stats().in_flight == 1


def test_dead_letters_can_be_inspected(tmp_path: Path) -> None:
    with SqliteJobQueue(tmp_path / "imgpipe.db", max_receives=1) as queue:
        queue.send({"n": 1}, dedup_id="a")
        [message] = queue.receive(1, 30)
        queue.release(message, 0)
        assert queue.receive(1, 30) == []

        [dead] = queue.dead_letters()

        assert (dead.message_id, dead.body, dead.receive_count) == (message.message_id, {"n": 1}, 1)
        queue.ack(dead)  # no receipt: an inspected dead letter cannot be acked away
        assert queue.stats().dead == 1


def test_redrive_merges_a_dead_letter_whose_job_was_sent_again(tmp_path: Path) -> None:
    for queue in (
        SqliteJobQueue(tmp_path / "imgpipe.db", max_receives=1),
        InMemoryJobQueue(max_receives=1),
    ):
        # GIVEN a dead letter, and the same job (dedup_id) sent again since
        queue.send({"n": 1}, dedup_id="a")
        [message] = queue.receive(1, 30)
        queue.release(message, 0)
        assert queue.receive(1, 30) == []
        queue.send({"n": 2}, dedup_id="a")

        # WHEN redriven, THEN one job remains
        assert queue.redrive() == 1
        stats = queue.stats()
        assert (stats.visible, stats.dead) == (1, 0)
        assert [m.body for m in queue.receive(5, 30)] == [{"n": 2}]
        if isinstance(queue, SqliteJobQueue):
            queue.close()
