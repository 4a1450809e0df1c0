"""The soak's short version: `python -m soak` (make soak's harness) with a small N and every
fault, once for the module; each test holds one invariant of its report (docs/operations.md,
Soak). The read-only database and the full disk need root: without it the harness skips them
loudly, and so does test_every_fault_ran; under CI=true that test fails instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
# Small, with every fault at least once. The read-only database outlasts a client's three
# attempts 5 s apart (so some upload is refused to the end); the lock outlasts the server's
# 10 s wait for it (a write fails) and the client's 8 s timeout (it retries).
SHORT = {
    "--uploads": 120,
    "--server-kills": 1,
    "--renderer-kills": 2,
    "--read-only-s": 14,
    "--locked-s": 12,
    "--full-disk-s": 8,
    "--drain-s": 15,
}
HANG_GUARD_S = 900

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    workdir = tmp_path_factory.mktemp("soak")
    argv = [str(x) for option in SHORT.items() for x in option]
    out = workdir / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGPIPE_")}
    run = subprocess.run(
        [sys.executable, "-m", "soak", *argv, "--workdir", str(workdir), "--json", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
        check=False,
    )
    (workdir / "soak.out").write_text(run.stdout + run.stderr)  # kept with pytest's tmp dirs
    # 0: no violation, 1: some; 2 is the harness failing to run at all
    assert run.returncode in (0, 1), f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    body: dict[str, Any] = json.loads(out.read_text())
    body["stdout"] = run.stdout
    return body


def invariant(report: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(f for f in report["invariants"] if f["name"] == name)
    return found


def assert_holds(report: dict[str, Any], name: str) -> None:
    found = invariant(report, name)
    assert found["count"] == 0, f"{name}: {found}\n{report['stdout'][-4000:]}"


def test_every_fault_ran(report: dict[str, Any]) -> None:
    if report["skipped"]:
        reason = f"the soak skipped faults: {report['skipped']}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run every fault: {reason}")
        pytest.skip(f"SKIPPING SOAK FAULTS: {reason}")
    names = " ".join(phase["name"] for phase in report["phases"])
    for phase in ("kill-server", "kill-renderer", "read-only", "locked", "full-disk"):
        assert phase in names


def test_every_phase_had_uploads_accepted(report: dict[str, Any]) -> None:
    for phase in report["phases"]:
        if phase["sent"]:
            assert phase["accepted"] > 0, phase


def test_no_accepted_upload_is_lost(report: dict[str, Any]) -> None:
    assert_holds(report, "lost")


def test_nothing_on_disk_without_a_record_and_no_record_without_its_original(
    report: dict[str, Any],
) -> None:
    assert_holds(report, "orphaned")


def test_no_5xx_but_a_503_with_retry_after(report: dict[str, Any]) -> None:
    assert_holds(report, "5xx")


def test_hostile_files_end_failed_with_their_code(report: dict[str, Any]) -> None:
    assert_holds(report, "hostile not FAILED with its code")


def test_valid_files_end_processed(report: dict[str, Any]) -> None:
    assert_holds(report, "valid not PROCESSED")


def test_the_server_never_exits_unless_killed(report: dict[str, Any]) -> None:
    assert_holds(report, "server exited")


def test_the_server_memory_does_not_grow_between_identical_batches(
    report: dict[str, Any],
) -> None:
    assert_holds(report, "RSS")


def test_a_retried_upload_makes_one_image(report: dict[str, Any]) -> None:
    assert_holds(report, "duplicated")


def test_a_refused_upload_leaves_no_image(report: dict[str, Any]) -> None:
    assert_holds(report, "ghost")


def test_the_backlog_drains_after_each_database_fault_without_a_restart(
    report: dict[str, Any],
) -> None:
    assert_holds(report, "stalled")
