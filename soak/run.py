"""`python -m soak`: runs the soak against a fresh `imgpipe serve`, prints the phases and the
invariants, and exits 1 on a violation (2 when the harness itself could not run)."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from soak import faults, scenario
from soak.check import Finding, judge_5xx, judge_records, name_of, table
from soak.client import AnswerLog, Outcome, Uploader
from soak.phases import PhaseReport, Timeline
from soak.plan import Planner
from soak.server import Serve, ServerError

# Memory: the server's RSS after the baseline batch against after the same batch again, in
# the same process, with every database fault in between. Caches that fill once and the
# allocator's noise stay within the margin (docs/operations.md gives the runs' figures); a
# leak per upload, per failed request or per fault grows past it.
RSS_MARGIN_MB = 24.0
RSS_MARGIN_SHARE = 0.2
# The data folder's own disk: an original and its renditions, with room to spare.
MB_PER_UPLOAD = 0.45
DISK_BASE_MB = 192


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m soak", description=__doc__)
    p.add_argument("-n", "--uploads", type=int, default=1500, help="how many uploads")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--concurrency", type=int, default=4, help="uploads in flight at once")
    p.add_argument("--read-only-s", type=float, default=20.0)
    p.add_argument("--locked-s", type=float, default=25.0)
    p.add_argument("--full-disk-s", type=float, default=15.0)
    p.add_argument("--server-kills", type=int, default=3)
    p.add_argument("--renderer-kills", type=int, default=5)
    p.add_argument("--drain-s", type=float, default=90.0, help="deadline for a backlog to drain")
    p.add_argument(
        "--skip", default="", help=f"faults not to inject: {','.join(faults.ALL_FAULTS)}"
    )
    p.add_argument("--workdir", type=Path, help="kept; default: a new temporary folder")
    p.add_argument("--json", type=Path, help="also write the report here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # Ctrl-C, and a SIGTERM (a CI job cancelled, `timeout`), end the soak through its
    # `finally`s: faults undone, the server stopped, the disk unmounted. A shell running it in
    # the background would otherwise have it ignore SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    skip = {name: "--skip" for name in args.skip.split(",") if name}
    if unknown := set(skip) - set(faults.ALL_FAULTS):
        print(f"unknown faults: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    why = faults.root_faults_unavailable()
    if why is not None:
        skip_loudly(skip, why)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="imgpipe-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"soak: {args.uploads} uploads, seed {args.seed}, in {workdir}", flush=True)
    started = time.monotonic()
    try:
        report = soak(args, workdir, skip, own_disk=why is None)
    except (ServerError, faults.FaultError) as exc:
        print(f"soak: the harness could not go on: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("soak: interrupted; faults undone, server stopped", file=sys.stderr)
        return 130
    report["seconds"] = round(time.monotonic() - started)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 1 if any(f["violation"] and f["count"] for f in report["invariants"]) else 0


def soak(
    args: argparse.Namespace, workdir: Path, skip: dict[str, str], *, own_disk: bool
) -> dict[str, Any]:
    data_dir = workdir / "data"
    log = AnswerLog()
    with contextlib.ExitStack() as stack:
        if own_disk:
            size = DISK_BASE_MB + int(args.uploads * MB_PER_UPLOAD)
            try:
                stack.enter_context(faults.small_disk(data_dir, workdir / "data.ext4", size))
            except faults.FaultError as exc:
                skip_loudly(skip, f"no disk of its own for the data folder: {exc}")
        serve = Serve(data_dir, workdir / "serve.log")
        stack.callback(serve.kill)  # on any way out; a normal end has stopped it already
        planner = Planner(args.seed)
        serve.start(workers=2)
        uploader = Uploader(serve.url, data_dir, args.seed, log)
        timeline = Timeline(serve, uploader, log, args.concurrency, args.drain_s)
        stack.callback(timeline.close)
        durations = scenario.Durations(
            args.read_only_s,
            args.locked_s,
            args.full_disk_s,
            args.server_kills,
            args.renderer_kills,
        )
        result = scenario.run(timeline, planner, args.uploads, durations, skip)
        records = timeline.reader.all_records()
        serve.stop()
        files = scenario.files_on_disk(data_dir)
    findings = [
        *judge_records(timeline.outcomes, records, files),
        judge_5xx(log.bad_5xx_count, log.bad_5xx),
        timeline.stalled,
        timeline.crashed,
        judge_rss(result),
    ]
    return {
        "uploads": args.uploads,
        "seed": args.seed,
        "skipped": skip,
        "workdir": str(workdir),
        "objectsMB": round(sum(files.values()) / 2**20),
        "phases": [phase_dict(r) for r in timeline.reports],
        "invariants": [asdict(f) for f in findings],
        "retried": retried(timeline.outcomes, records),
    }


def skip_loudly(skip: dict[str, str], why: str) -> None:
    skip |= {name: why for name in faults.ROOT_FAULTS}
    names = ", ".join(sorted(faults.ROOT_FAULTS))
    print(f"\n*** SKIPPING FAULTS {names}: {why} ***\n", file=sys.stderr, flush=True)


def judge_rss(result: scenario.Result) -> Finding:
    """The baseline batch against the same batch after the database faults, in one process;
    against the same batch right after it when a stall's restart came in between."""
    before = result.baseline
    after, across = result.final, "the database faults"
    if result.final.pid != before.pid:
        after, across = result.repeat, "one batch (restarted during the faults)"
    growth = after.memory[0] - before.memory[0]
    limit = max(RSS_MARGIN_MB, before.memory[0] * RSS_MARGIN_SHARE)
    finding = Finding("RSS")
    finding.note = (
        f"server {before.memory[0]:.0f} -> {after.memory[0]:.0f} MB across {across}"
        f" (limit +{limit:.0f} MB)"
    )
    if growth > limit:
        finding.add(f"+{growth:.0f} MB across {across}")
    return finding


def retried(outcomes: list[Outcome], records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every upload that took more than one attempt or was not accepted, with its records."""
    count = Counter(name_of(r) for r in records)
    return [
        {
            "name": o.upload.name,
            "route": o.upload.route,
            "phase": o.phase,
            "attempts": [a.what for a in o.attempts],
            "records": count[o.upload.name],
        }
        for o in outcomes
        if len(o.attempts) > 1 or not o.accepted
    ]


def phase_dict(report: PhaseReport) -> dict[str, Any]:
    return {
        "name": report.name,
        "sent": len(report.outcomes),
        "accepted": sum(o.accepted for o in report.outcomes),
        "refused": sum(o.refused for o in report.outcomes),
        "drainedS": report.drained_s,
        "health": dict(report.health),
        "rssMB": round(report.memory[0], 1),
        "renderersMB": round(report.memory[1], 1),
        "fds": report.memory[2],
        "notes": report.notes,
        "row": report.row(),
    }


def print_report(report: dict[str, Any]) -> None:
    findings = [Finding(**f) for f in report["invariants"]]
    print(f"\n{table(findings)}")
    for name, why in report["skipped"].items():
        print(f"SKIPPED {name}: {why}")
    print(f"{report['seconds']}s; {report['objectsMB']} MB of objects; {report['workdir']}")
