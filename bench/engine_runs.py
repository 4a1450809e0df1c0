"""The engines' own processes (bench/engines/worker.py, bench/sharp/render.mjs): how each is
started, a run of them timed from "go" to the last report, and the median of repeats."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engines import imgpipe_engine

BENCH = Path(__file__).resolve().parent
SHARP = BENCH / "sharp"
OUT = BENCH / ".out"
ENGINE_ENV = {"VIPS_CONCURRENCY": "1", "MALLOC_ARENA_MAX": "2"}


@dataclass(frozen=True)
class Engine:
    label: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()

    @property
    def slug(self) -> str:
        return "".join(c if c.isalnum() else "-" for c in self.label.lower()).strip("-")


def py_engine(label: str, name: str, **env: str) -> Engine:
    if name.startswith("imgpipe"):
        variant = "identical" if name.endswith("identical") else "default"
        env = {**imgpipe_engine.options_env(variant), **env}
    return Engine(
        label, (sys.executable, str(BENCH / "engines" / "worker.py"), name), tuple(env.items())
    )


def sharp_engine(label: str, variant: str) -> Engine:
    return Engine(label, ("node", str(SHARP / "render.mjs"), variant))


def sharp_ready() -> str | None:
    """Install sharp from the lock file if needed; None when ready, else why not."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node/npm not installed"
    if not (SHARP / "node_modules" / "sharp").is_dir():
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=SHARP,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            return f"npm ci failed: {done.stderr.strip()[-300:]}"
    return None


@dataclass
class EngineRun:
    seconds: float  # wall time from "go" to the last report
    per_image_ms: list[float]
    peak_rss_mb: float  # the largest of the processes' peak RSS (VmHWM)
    baseline_rss_mb: float  # the largest of their RSS once imports were done
    bytes: dict[str, int]
    sizes: dict[str, dict[str, list[int]]]
    # CPU ms per image in Pillow's JPEG and WebP encoders (worker.clock_encodes); empty for
    # sharp, and meaningful only pinned to one core (unpinned, imgpipe's helper thread takes
    # some encodes out of the clocked thread).
    encode_ms: list[float]


def run_engine(
    engine: Engine,
    files: list[Path],
    procs: int,
    pin: bool,
    out: Path | None = None,
    pad: int = 0,
) -> EngineRun:
    """Start `procs` processes of an engine, each with every procs-th file; time them from
    the moment all are warm and told to go until the last one reports. `pad`: characters of
    an otherwise unused environment variable (peak_by_layout)."""
    env = {**os.environ, **ENGINE_ENV, **dict(engine.env)}
    if pad:
        env["BENCH_ENV_PAD"] = "x" * pad
    with tempfile.TemporaryDirectory(prefix="imgpipe-bench-") as tmp:
        workers = [
            _start(engine, files[n::procs], Path(tmp) / f"list{n}.txt", pin, out, env)
            for n in range(procs)
        ]
        seconds, reports = _timed(engine, workers)
    return _combined(seconds, reports)


def _start(
    engine: Engine,
    files: list[Path],
    listfile: Path,
    pin: bool,
    out: Path | None,
    env: dict[str, str],
) -> subprocess.Popen[str]:
    """One process of the engine with its share of the files, warming up until told to go."""
    listfile.write_text("\n".join(map(str, files)) + "\n")
    argv = [*engine.argv, str(listfile)]
    if out is not None:
        argv += ["--out", str(out)]
    if pin:
        argv = ["taskset", "-c", "0", *argv]
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)


def _timed(
    engine: Engine, workers: list[subprocess.Popen[str]]
) -> tuple[float, list[dict[str, Any]]]:
    """Once every process is ready: "go" to all, then the seconds until the last one reports,
    and the reports."""
    for w in workers:
        line = w.stdout.readline() if w.stdout else ""
        if line.strip() != "ready":
            raise RuntimeError(f"{engine.label} did not start: {line!r}")
    started = time.perf_counter()
    for w in workers:
        assert w.stdin is not None
        w.stdin.write("go\n")
        w.stdin.flush()
    reports = []
    for w in workers:
        assert w.stdout is not None
        reports.append(json.loads(w.stdout.readline()))
    seconds = time.perf_counter() - started
    for w in workers:
        w.wait(30)
    return seconds, reports


def _combined(seconds: float, reports: list[dict[str, Any]]) -> EngineRun:
    """The processes' reports as one run: bytes summed, the largest peaks."""
    totals: dict[str, int] = {}
    sizes: dict[str, dict[str, list[int]]] = {}
    for r in reports:
        for key, value in r["bytes"].items():
            totals[key] = totals.get(key, 0) + value
        sizes.update(r["sizes"])
    return EngineRun(
        seconds,
        [ms for r in reports for ms in r["per_image_ms"]],
        max(r["peak_rss_kb"] for r in reports) / 1024,
        max(r["baseline_rss_kb"] for r in reports) / 1024,
        totals,
        sizes,
        [ms for r in reports for ms in r.get("encode_ms", [])],
    )


def median_engine(runs: list[EngineRun]) -> EngineRun:
    ordered = sorted(runs, key=lambda r: r.seconds)
    middle = ordered[len(ordered) // 2]
    return EngineRun(
        middle.seconds,
        middle.per_image_ms,
        statistics.median(r.peak_rss_mb for r in runs),
        statistics.median(r.baseline_rss_mb for r in runs),
        middle.bytes,
        middle.sizes,
        middle.encode_ms,
    )


def side_by_side(
    engines: list[Engine], files: list[Path], procs: int, pin: bool, repeats: int
) -> dict[str, EngineRun]:
    runs: dict[str, list[EngineRun]] = {e.label: [] for e in engines}
    for _ in range(repeats):
        for engine in engines:
            runs[engine.label].append(run_engine(engine, files, procs, pin))
    return {label: median_engine(r) for label, r in runs.items()}
