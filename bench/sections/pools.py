"""The local processes section: `imgpipe process` as a user runs it, serve's worker pool as
threads or as rendering processes, and imgpipe with and without its helper encode thread."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from engine_runs import EngineRun, median_engine, py_engine, run_engine
from procs import PeakRss, Run, interleaved, tree_rss_kb

from imgpipe.config import Settings
from imgpipe.engine import InProcessRenderer, SubprocessRenderer
from sections.common import Bench


@dataclass(frozen=True)
class LocalRuns:
    """Empty when the section was skipped."""

    cli: dict[str, Run] = field(default_factory=dict)  # by `--jobs N`
    pools: dict[str, Run] = field(default_factory=dict)  # "threads", "processes"
    helper: dict[str, dict[int, EngineRun]] = field(default_factory=dict)  # by process count
    baseline_mb: float = 0.0  # this script's own RSS before the pools, the corpus bytes in it


def measure(bench: Bench) -> LocalRuns:
    if "cli" in bench.skip:
        return LocalRuns()
    bench.settle("imgpipe process and pools")
    files, repeats = bench.corpus.files, bench.args.repeats
    cli = interleaved({f"--jobs {j}": (lambda j=j: cli_process(files, j)) for j in (1, 2)}, repeats)
    baseline_mb, pools = _pools(files, repeats)
    return LocalRuns(cli, pools, encode_helper(files, repeats), baseline_mb)


def _pools(files: list[Path], repeats: int) -> tuple[float, dict[str, Run]]:
    """The pool both ways, on the corpus' bytes read beforehand (and let go on return); this
    script's RSS with them in it is the baseline the page takes the pools' peaks from."""
    data = [f.read_bytes() for f in files]
    baseline_mb = tree_rss_kb(os.getpid()) / 1024
    pools = interleaved(
        {k: (lambda k=k: pool(k, data, 2)) for k in ("threads", "processes")}, repeats
    )
    return baseline_mb, pools


def cli_process(files: list[Path], jobs: int) -> Run:
    """`imgpipe process --jobs N`, as a user runs it (interpreter start and imports included)."""
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "imgpipe.entrypoints.cli",
                "process",
                *map(str, files),
                "--out",
                out,
                "--jobs",
                str(jobs),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        with PeakRss(proc.pid) as peak:
            _, err = proc.communicate()
        elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"imgpipe process failed: {err.decode()[-2000:]}")
    return Run(elapsed, peak.peak_kb / 1024)


def pool(kind: str, data: list[bytes], workers: int) -> Run:
    """The serve worker pool's rendering: N threads rendering in-process (libvips releases the
    GIL) against N threads each driving a rendering process."""
    options = Settings().render_options()
    renderer: InProcessRenderer | SubprocessRenderer
    if kind == "threads":
        renderer = InProcessRenderer()
        renderer.render(data[0], options)  # warm, as a long-running server is
    else:
        renderer = SubprocessRenderer(workers, timeout_s=120)
        for _ in range(workers):
            renderer.render(data[0], options)
    script_pid = os.getpid()
    try:
        with PeakRss(script_pid) as peak:
            started = time.perf_counter()
            with ThreadPoolExecutor(workers) as ex:
                list(ex.map(lambda d: renderer.render(d, options), data))
            elapsed = time.perf_counter() - started
    finally:
        if isinstance(renderer, SubprocessRenderer):
            renderer.close()
    return Run(elapsed, peak.peak_kb / 1024)


def encode_helper(files: list[Path], repeats: int) -> dict[str, dict[int, EngineRun]]:
    """imgpipe with and without its helper encode thread, unpinned: one process rendering the
    corpus one image after another on an otherwise idle machine (as a lone upload renders),
    and two processes at once (full load, where the helper should stay out of the way)."""
    engines = {
        "a helper thread while a core is idle (imgpipe)": py_engine("imgpipe", "imgpipe"),
        "every encode in the render's thread": py_engine("one thread", "imgpipe-one-thread"),
    }
    runs: dict[str, dict[int, list[EngineRun]]] = {label: {1: [], 2: []} for label in engines}
    for _ in range(repeats):
        for procs in (1, 2):
            for label, engine in engines.items():
                runs[label][procs].append(run_engine(engine, files, procs, pin=False))
    return {
        label: {procs: median_engine(r) for procs, r in by.items()} for label, by in runs.items()
    }
