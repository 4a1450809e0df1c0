"""`make bench`: throughput and peak memory of imgpipe on real photographs, printed as tables
and written to docs/benchmarks.md. Runs being compared are interleaved and repeated, and the
median is reported, because these machines are noisy.

    python bench/run.py [--repeats 3] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
import corpus

from imgpipe.adapters.renderers import InProcessRenderer, SubprocessRenderer
from imgpipe.config import Settings
from imgpipe.core.imaging import RenderOptions

ROOT = Path(__file__).resolve().parent.parent
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
# As `imgpipe` itself does (cli.main): fewer glibc arenas, less RSS with libvips threads.
os.environ.setdefault("MALLOC_ARENA_MAX", "2")


# -- measuring a process tree ----------------------------------------------------------------


def _tree_rss_kb(root_pid: int) -> int:
    """Resident memory of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            statm = Path(f"/proc/{entry}/statm").read_text().split()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = int(statm[1]) * PAGE_KB
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


class PeakRss:
    """Samples the tree's RSS every 20 ms while the block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, _tree_rss_kb(self.pid))
            self._stop.wait(0.02)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, _tree_rss_kb(self.pid))


@dataclass
class Run:
    seconds: float
    peak_mb: float


def median_run(runs: list[Run]) -> Run:
    return Run(
        statistics.median(r.seconds for r in runs), statistics.median(r.peak_mb for r in runs)
    )


# -- the cases -------------------------------------------------------------------------------


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
    options = RenderOptions.from_settings(Settings())
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


def interleaved(cases: dict[str, Callable[[], Run]], repeats: int) -> dict[str, Run]:
    results: dict[str, list[Run]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, case in cases.items():
            results[name].append(case())
    return {name: median_run(runs) for name, runs in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()

    files = corpus.build()
    megapixels = []
    for f in files:
        with Image.open(f) as im:
            megapixels.append(im.width * im.height / 1e6)
    total_mp = sum(megapixels)
    n = len(files)
    corpus_line = f"{corpus.describe(files)} ({min(megapixels):.1f}–{max(megapixels):.1f} MP)"
    print(f"corpus: {corpus_line}", flush=True)

    cli = interleaved(
        {f"--jobs {j}": (lambda j=j: cli_process(files, j)) for j in (1, 2)}, args.repeats
    )
    data = [f.read_bytes() for f in files]
    # The in-process pool would keep the bytes of the script itself in its RSS: measure the
    # script's own baseline to subtract it from the threads case.
    baseline_mb = _tree_rss_kb(os.getpid()) / 1024
    pools = interleaved(
        {k: (lambda k=k: pool(k, data, 2)) for k in ("threads", "processes")}, args.repeats
    )

    cpu = os.cpu_count()
    lines = [
        "# imgpipe benchmarks",
        "",
        f"Machine: {cpu} cores, Python {sys.version.split()[0]}. Corpus: {corpus_line}: real",
        "photographs from Debian's gnome-backgrounds and mate-backgrounds, plus camera-like",
        "12 MP JPEGs (4032×3024, q92, EXIF orientation 1/3/6/8) made from them",
        "(`bench/corpus.py`).",
        "Default renditions: 1600/800/256 px × JPEG q82 + WebP q80. Medians of "
        f"{args.repeats} interleaved runs.",
        "",
        "## `imgpipe process` (interpreter start and imports included)",
        "",
        "| command | seconds | images/s | MP/s | peak RSS, whole process tree |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, run in cli.items():
        lines.append(
            f"| `imgpipe process --out DIR {name}` | {run.seconds:.2f} | "
            f"{n / run.seconds:.2f} | {total_mp / run.seconds:.1f} | "
            f"{run.peak_mb:.0f} MB |"
        )
    ratio = cli["--jobs 1"].seconds / cli["--jobs 2"].seconds
    lines += [
        "",
        f"`--jobs 2` is {ratio:.2f}× `--jobs 1` on {cpu} cores.",
        "",
        "## Serve's worker pool: threads or processes (2 workers, warm)",
        "",
        "| pool | seconds | images/s | peak RSS |",
        "|---|---:|---:|---:|",
    ]
    for name, run in pools.items():
        peak = run.peak_mb - (baseline_mb if name == "threads" else 0)
        lines.append(f"| 2 {name} | {run.seconds:.2f} | {n / run.seconds:.2f} | {peak:.0f} MB |")
    speed = pools["threads"].seconds / pools["processes"].seconds
    lines += [
        "",
        f"Processes run at {speed:.2f}× the speed of threads. (The threads' peak has the",
        f"benchmark script's own {baseline_mb:.0f} MB, the corpus bytes included, subtracted.)",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"written to {args.out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
