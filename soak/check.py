"""The invariants, judged from what the client saw, the records and the data folder's files.

Pure: no HTTP, no processes. Each record is mapped back to its upload by the last segment of
its key (every upload's file name is unique), whatever the route.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from soak.client import Outcome

EXAMPLES = 3
TERMINAL = frozenset({"PROCESSED", "FAILED"})
# A record FAILED with one of these ran out of retries (and its job was dead-lettered): by
# design after max_attempts, and `imgpipe redrive` brings it back. Noted, not a violation.
TRANSIENT_CODES = frozenset({"transient", "store_unavailable", "image_busy", "worker_crashed"})


@dataclass
class Finding:
    """One invariant: how many broke it, a few of them, and what was measured."""

    name: str
    count: int = 0
    examples: list[str] = field(default_factory=list)
    note: str = ""
    violation: bool = True  # False: a count worth reading, allowed by design

    @property
    def broken(self) -> bool:
        return self.violation and self.count > 0

    def add(self, example: str) -> None:
        self.count += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(example)


def name_of(record: Mapping[str, Any]) -> str:
    return str(record["key"]).rsplit("/", 1)[-1]


def judge_records(
    outcomes: Sequence[Outcome],
    records: Sequence[Mapping[str, Any]],
    files: Mapping[str, int],
) -> list[Finding]:
    """lost, duplicated, ghost, orphaned, and the hostile and valid files' outcomes.
    `files`: every object under uploads/ and renditions/ on disk, key -> size."""
    by_name: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in records:
        by_name[name_of(r)].append(r)
    lost, duplicated, ghost = Finding("lost"), Finding("duplicated"), Finding("ghost")
    hostile = Finding("hostile not FAILED with its code")
    valid = Finding("valid not PROCESSED")
    dead = Finding("dead-lettered", note="FAILED with a transient code", violation=False)
    for outcome in outcomes:
        name = outcome.upload.name
        mine = by_name.get(name, [])
        if len(mine) > 1:
            duplicated.add(f"{name}: {len(mine)} records ({_attempts(outcome)})")
        if outcome.refused and mine:
            ghost.add(f"{name}: refused ({_attempts(outcome)}), yet {mine[0]['status']}")
        if not outcome.accepted:
            continue
        # the record the answer named; a dropped file's is the one its key gives
        record = next((r for r in mine if r["imageId"] == outcome.image_id), None)
        problem = _lost(record, files)
        if problem:
            lost.add(f"{name} ({outcome.upload.route}, {outcome.phase}): {problem}")
            continue
        assert record is not None
        _judge_outcome(outcome, record, hostile, valid, dead)
    orphaned = _orphaned(records, files, {o.upload.name for o in outcomes})
    return [lost, duplicated, ghost, orphaned, hostile, valid, dead]


def _attempts(outcome: Outcome) -> str:
    return " ".join(a.what for a in outcome.attempts)


def _lost(record: Mapping[str, Any] | None, files: Mapping[str, int]) -> str:
    """Why an accepted upload counts as lost, or ''."""
    if record is None:
        return "no record"
    if record["status"] not in TERMINAL:
        return f"still {record['status']}"
    if record["status"] == "PROCESSED":
        missing = [r["key"] for r in record["renditions"] if files.get(r["key"]) != r["bytes"]]
        if missing:
            return f"PROCESSED, {len(missing)} renditions missing or cut ({missing[0]})"
    return ""


def _judge_outcome(
    outcome: Outcome, record: Mapping[str, Any], hostile: Finding, valid: Finding, dead: Finding
) -> None:
    upload = outcome.upload
    error = record.get("error") or {}
    if record["status"] == "FAILED" and error.get("code") in TRANSIENT_CODES:
        dead.add(f"{upload.name} ({outcome.phase}): {error.get('code')}")
    elif upload.hostile:
        if record["status"] != "FAILED" or error.get("code") != upload.expected:
            got = f"{record['status']} {error.get('code', '')}".strip()
            hostile.add(f"{upload.name}: {got}, expected FAILED {upload.expected}")
    elif record["status"] != "PROCESSED":
        valid.add(f"{upload.name} ({outcome.phase}): {record['status']} {error.get('code')}")


def _orphaned(
    records: Sequence[Mapping[str, Any]], files: Mapping[str, int], names: set[str]
) -> Finding:
    """Objects on disk no record names, records whose original is gone, records of no upload."""
    orphaned = Finding("orphaned")
    named = {r["key"] for r in records}
    named |= {rendition["key"] for r in records for rendition in r["renditions"]}
    for key in sorted(files):
        if key not in named:
            orphaned.add(f"{key}: on disk, in no record")
    for record in records:
        if record["key"] not in files:
            orphaned.add(f"{record['key']}: its record ({record['status']}) has no original")
        if name_of(record) not in names:
            orphaned.add(f"{record['key']}: a record of no upload the soak made")
    return orphaned


def judge_5xx(count: int, examples: Iterable[str]) -> Finding:
    finding = Finding("5xx", count, list(examples)[:EXAMPLES])
    finding.note = "503 with Retry-After is a refusal; /health's 503 is its 'degraded'"
    return finding


def table(findings: Sequence[Finding]) -> str:
    width = max(len(f.name) for f in findings)
    lines = [f"{'invariant':<{width}}  {'count':>6}  verdict"]
    for f in findings:
        verdict = "VIOLATION" if f.broken else "noted" if f.count else "ok"
        lines.append(f"{f.name:<{width}}  {f.count:>6}  {verdict}  {f.note}".rstrip())
        lines.extend(f"{'':<{width}}          - {example}" for example in f.examples)
    return "\n".join(lines)
