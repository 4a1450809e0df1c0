"""`make bench`: imgpipe side by side with Pillow, sharp and the floor on real photographs,
each optimisation with its measured effect, the local pipeline end to end, the API under load,
and Lambda; written to docs/benchmarks.md and docs/benchmarks.png.

    python bench/run.py [--repeats 3] [--wait-idle 300] [--out docs/benchmarks.md]
                        [--skip lambda,api,...]

Runs being compared are interleaved and repeated, and medians are reported, because these
machines are noisy; every ratio comes from numbers measured in the same run. Each engine runs
in processes of its own (bench/engines/worker.py, bench/sharp/render.mjs): "one core" is one
process pinned with taskset -c 0, "two processes" is two unpinned processes splitting the
corpus. All get the same environment: VIPS_CONCURRENCY=1, MALLOC_ARENA_MAX=2.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
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
import chart
import corpus
import lambda_cost
import quality
import webp_search
from engines import imgpipe_engine

import e2e as e2e_bench
from imgpipe.config import Settings
from imgpipe.engine import InProcessRenderer, SubprocessRenderer

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


def interleaved(cases: dict[str, Callable[[], Run]], repeats: int) -> dict[str, Run]:
    results: dict[str, list[Run]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, case in cases.items():
            results[name].append(case())
    return {name: median_run(runs) for name, runs in results.items()}


# -- engines side by side --------------------------------------------------------------------

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
        workers = []
        for n in range(procs):
            listfile = Path(tmp) / f"list{n}.txt"
            listfile.write_text("\n".join(map(str, files[n::procs])) + "\n")
            argv = [*engine.argv, str(listfile)]
            if out is not None:
                argv += ["--out", str(out)]
            if pin:
                argv = ["taskset", "-c", "0", *argv]
            workers.append(
                subprocess.Popen(
                    argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True
                )
            )
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


# What a rendering process holds, one import at a time (a fresh interpreter, VmRSS after each).
IMPORT_STEPS: list[tuple[str, str]] = [
    ("the interpreter", "pass"),
    ("pyvips, with libvips loaded", "import pyvips; pyvips.Image.black(1, 1).avg()"),
    ("Pillow, with its JPEG and WebP plugins", "from PIL import JpegImagePlugin, WebPImagePlugin"),
    ("imgpipe's render and its loop", "from imgpipe.engine import pipeline, render_child"),
]
# What the serve process imports and a rendering process no longer does (after the above).
SERVE_ONLY_STEPS: list[tuple[str, str]] = [
    ("pydantic and the record's models", "import imgpipe.core.model"),
    ("pydantic-settings and the settings models", "import imgpipe.config"),
    ("the CLI (typer, rich)", "import imgpipe.entrypoints.cli"),
]

_IMPORT_SCRIPT = """
import json, sys
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
out = []
for code in json.loads(sys.argv[1]):
    exec(code)
    out.append(rss())
print(json.dumps(out))
"""


def import_steps() -> list[tuple[str, float]]:
    """MB of RSS each step of IMPORT_STEPS, then SERVE_ONLY_STEPS, adds, in order (the first
    is the whole interpreter)."""
    steps = IMPORT_STEPS + SERVE_ONLY_STEPS
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_SCRIPT, json.dumps([c for _, c in steps])],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **ENGINE_ENV},
    )
    kb = json.loads(done.stdout)
    return [(what, (kb[i] - (kb[i - 1] if i else 0)) / 1024) for i, (what, _) in enumerate(steps)]


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


# How a process is started (its environment, working directory, PYTHONPATH) shifts where
# glibc's heap puts things, and so whether a freed block is reused or the heap grows: the same
# engine on the same corpus peaked 126, 130 or 144 MB (Pillow) and 136 or 142 MB (imgpipe)
# with nothing else changed. Each such start is sampled by one more environment variable.
LAYOUT_PADS = (0, 700, 1500, 2600, 3800, 5000)
# The end-to-end section's sustained run: the corpus this many times over.
SUSTAINED_ROUNDS = 4


def peak_by_layout(engines: list[Engine], files: list[Path]) -> dict[str, list[float]]:
    """Each engine's peak RSS over the corpus (one pinned process) once per LAYOUT_PADS."""
    peaks: dict[str, list[float]] = {e.label: [] for e in engines}
    for pad in LAYOUT_PADS:
        for engine in engines:
            peaks[engine.label].append(run_engine(engine, files, 1, True, pad=pad).peak_rss_mb)
    return peaks


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


def quality_pass(engines: list[Engine], files: list[Path]) -> dict[str, dict[str, float]]:
    """Every engine's outputs written once (untimed), then SSIM against the reference."""
    shutil.rmtree(OUT, ignore_errors=True)
    outputs = {}
    for engine in engines:
        run_engine(engine, files, 2, pin=False, out=OUT / engine.slug)
        outputs[engine.label] = OUT / engine.slug
    return quality.score(files, outputs)


# -- one optimisation at a time --------------------------------------------------------------

# (what, knobs of bench/engines/floor.py, extra environment)
LEVERS: list[tuple[str, dict[str, object], dict[str, str]]] = [
    ("baseline: the floor with libvips' encoders (fast shrink-on-load, cascade, Lanczos3)", {}, {}),
    (
        "shrink-on-load as libvips' thumbnail chooses (keeps 2x for the resize)",
        {"shrink": "libvips"},
        {},
    ),
    ("no shrink-on-load (full-size decode)", {"shrink": "none"}, {}),
    ("no cascade: each size decoded from the original", {"cascade": False}, {}),
    ("sRGB transform on untagged images too", {"icc": "always"}, {}),
    ("libvips operation cache on (100 operations)", {"cache": 100}, {}),
    ("VIPS_CONCURRENCY=2 (on one core)", {}, {"VIPS_CONCURRENCY": "2"}),
    ("WebP effort 2", {"webp": {"effort": 2}}, {}),
    ("WebP effort 3", {"webp": {"effort": 3}}, {}),
    ("WebP effort 6", {"webp": {"effort": 6}}, {}),
    ("WebP smart_subsample", {"webp": {"smart_subsample": True}}, {}),
    ("JPEG without optimize_coding", {"jpeg": {"optimize_coding": False}}, {}),
    ("JPEG progressive", {"jpeg": {"interlace": True}}, {}),
    ("JPEG trellis quantisation (mozjpeg)", {"jpeg": {"trellis_quant": True}}, {}),
    ("JPEG 4:4:4 (no chroma subsampling)", {"jpeg": {"subsample_mode": "off"}}, {}),
    ("JPEG and WebP written by Pillow (its libjpeg-turbo and libwebp)", {"encoder": "pillow"}, {}),
    ("resize kernel cubic", {"kernel": "cubic"}, {}),
    ("resize kernel linear", {"kernel": "linear"}, {}),
]


@dataclass
class LeverResult:
    what: str
    ms_per_image: float
    peak_rss_mb: float
    jpeg_bytes: int
    webp_bytes: int
    jpeg_ssim: float
    webp_ssim: float


def levers(files: list[Path], repeats: int) -> list[LeverResult]:
    engines = [
        py_engine(what, "floor", BENCH_KNOBS=json.dumps(knobs), **env)
        for what, knobs, env in LEVERS
    ]
    runs: dict[str, list[EngineRun]] = {e.label: [] for e in engines}
    lever_out = OUT / "levers"
    shutil.rmtree(lever_out, ignore_errors=True)
    for n in range(repeats):
        for engine in engines:
            out = lever_out / engine.slug if n == 0 else None
            runs[engine.label].append(run_engine(engine, files, 1, pin=True, out=out))
    scores = quality.score(files, {e.label: lever_out / e.slug for e in engines})
    results = []
    for engine in engines:
        run = median_engine(runs[engine.label])
        by = scores[engine.label]
        results.append(
            LeverResult(
                engine.label,
                run.seconds / len(files) * 1000,
                run.peak_rss_mb,
                sum(v for k, v in run.bytes.items() if k.endswith(".jpg")),
                sum(v for k, v in run.bytes.items() if k.endswith(".webp")),
                statistics.mean(v for k, v in by.items() if k.endswith(".jpg")),
                statistics.mean(v for k, v in by.items() if k.endswith(".webp")),
            )
        )
    return results


# -- the report ------------------------------------------------------------------------------


def wait_idle(limit_s: float, threshold: float = 0.5) -> str:
    """Wait (30 s polls) until the 1-minute load is below `threshold`, at most `limit_s`."""
    deadline = time.monotonic() + limit_s
    while True:
        load = os.getloadavg()[0]
        if load < threshold:
            return f"1-minute load {load:.2f} at the start"
        if time.monotonic() >= deadline:
            return (
                f"1-minute load {load:.2f} at the start: it never settled below {threshold} "
                f"in {limit_s:.0f} s (other work was running)"
            )
        print(f"waiting for the machine to settle (load {load:.2f})", flush=True)
        time.sleep(30)


def fmt_ratio(value: float) -> str:
    return f"{value:.2f}×"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--wait-idle", type=float, default=120, help="seconds, at most")
    parser.add_argument(
        "--section-wait", type=float, default=45, help="seconds, at most, before each later section"
    )
    parser.add_argument(
        "--skip", default="", help="comma-separated: cli,levers,webp,e2e,api,lambda"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    bench_started = time.perf_counter()
    # imgpipe's modules as bytecode first, as `make serve` has them (the Makefile's
    # `bytecode`): compiled from source, each engine process held 0.9 MB more after imports.
    compileall.compile_dir(ROOT / "src" / "imgpipe", quiet=1)

    files = corpus.build()
    megapixels = []
    for f in files:
        with Image.open(f) as im:
            megapixels.append(im.width * im.height / 1e6)
    total_mp = sum(megapixels)
    n = len(files)
    corpus_line = f"{corpus.describe(files)} ({min(megapixels):.1f}–{max(megapixels):.1f} MP)"
    print(f"corpus: {corpus_line}", flush=True)
    idle = wait_idle(args.wait_idle)
    print(idle, flush=True)
    section_loads: dict[str, float] = {}

    def settle(section: str) -> None:
        """Before each later section too: other work may have started meanwhile."""
        print(wait_idle(args.section_wait), flush=True)
        section_loads[section] = os.getloadavg()[0]
        print(f"{section} ...", flush=True)

    # The engines, at identical output settings.
    engines = [
        py_engine("imgpipe", "imgpipe"),
        py_engine("floor", "floor", BENCH_KNOBS=json.dumps({"encoder": "pillow"})),
        py_engine("Pillow", "pillow"),
    ]
    identical_is_default = imgpipe_engine.defaults_are_identical()
    if not identical_is_default:
        engines.insert(1, py_engine("imgpipe (identical settings)", "imgpipe-identical"))
    sharp_missing = sharp_ready()
    if sharp_missing is None:
        engines += [
            sharp_engine("sharp", "identical"),
            sharp_engine("sharp (its defaults)", "defaults"),
        ]
    print("engines, one core ...", flush=True)
    one = side_by_side(engines, files, 1, True, args.repeats)
    print("engines, two processes ...", flush=True)
    two = side_by_side(engines, files, 2, False, args.repeats)
    print("quality ...", flush=True)
    ssim = quality_pass(engines, files)
    print("memory ...", flush=True)
    largest = max(files, key=lambda f: f.stat().st_size)
    alone = {
        e.label: median_engine([run_engine(e, [largest], 1, True) for _ in range(args.repeats)])
        for e in engines
    }
    imports = import_steps()
    others = [label for label in one if label not in ("imgpipe", "floor")]
    lowest_other = min(others, key=lambda label: one[label].peak_rss_mb)
    layouts = peak_by_layout([e for e in engines if e.label in ("imgpipe", lowest_other)], files)

    lever_rows: list[LeverResult] = []
    if "levers" not in skip:
        settle("levers")
        lever_rows = levers(files[::3], args.repeats)

    webp_rows: list[webp_search.Row] = []
    if "webp" not in skip:
        settle("libwebp settings")
        webp_rows = webp_search.search(files[::3])

    cli: dict[str, Run] = {}
    pools: dict[str, Run] = {}
    helper: dict[str, dict[int, EngineRun]] = {}
    baseline_mb = 0.0
    if "cli" not in skip:
        settle("imgpipe process and pools")
        cli = interleaved(
            {f"--jobs {j}": (lambda j=j: cli_process(files, j)) for j in (1, 2)}, args.repeats
        )
        data = [f.read_bytes() for f in files]
        baseline_mb = _tree_rss_kb(os.getpid()) / 1024
        pools = interleaved(
            {k: (lambda k=k: pool(k, data, 2)) for k in ("threads", "processes")}, args.repeats
        )
        del data
        helper = encode_helper(files, args.repeats)

    end_to_end: list[e2e_bench.EndToEnd] = []
    # The same uploads with the largest file first: how much of the tail is the order
    largest_first = [largest, *(f for f in files if f != largest)]
    reordered: list[e2e_bench.EndToEnd] = []
    # Sustained: the corpus SUSTAINED_ROUNDS times over, so that what happens once per batch
    # (the first upload landing, the last image rendering alone) weighs a quarter as much;
    # the raw engine renders the same list (two processes, pre-split), taking turns.
    sustained: list[tuple[e2e_bench.EndToEnd, EngineRun]] = []
    raw_engine = engines[0]  # imgpipe
    loads: list[e2e_bench.Load] = []
    api_error = ""
    if "e2e" not in skip:
        settle("end to end and API")
        for _ in range(args.repeats):
            with e2e_bench.serve() as server:
                end_to_end.append(e2e_bench.e2e(server, files))
                if "api" not in skip and not loads and not api_error:
                    try:
                        for route in (f"/images/{end_to_end[-1].ids[0]}", "/images?limit=50"):
                            loads.append(e2e_bench.api_load(server, route))
                    except (RuntimeError, subprocess.CalledProcessError) as exc:
                        api_error = str(exc)
            with e2e_bench.serve() as server:
                reordered.append(e2e_bench.e2e(server, largest_first))
            rounds = files * SUSTAINED_ROUNDS
            raw = run_engine(raw_engine, rounds, 2, pin=False)
            with e2e_bench.serve() as server:
                sustained.append((e2e_bench.e2e(server, rounds), raw))

    lam: lambda_cost.LambdaReport | None = None
    lambda_error = ""
    if "lambda" not in skip:
        settle("lambda")
        try:
            lam = lambda_cost.measure()
        except Exception as exc:  # no python3.13, no network: say so in the doc
            lambda_error = f"{type(exc).__name__}: {str(exc)[:300]}"
    load_after = os.getloadavg()[0]
    minutes = (time.perf_counter() - bench_started) / 60

    # ---- the document ----
    base = "Pillow"
    peers = [
        label for label in one if label.startswith(("Pillow", "sharp")) and "defaults" not in label
    ]
    best_peer = max(peers, key=lambda label: n / one[label].seconds)

    def kb(run: EngineRun, suffix: str = "") -> float:
        return sum(v for k, v in run.bytes.items() if k.endswith(suffix)) / n / 1000

    def mean_ssim(label: str, suffix: str) -> float:
        return statistics.mean(v for k, v in ssim[label].items() if k.endswith(suffix))

    lines = [
        "# imgpipe benchmarks",
        "",
        "Written by `make bench` (`bench/run.py`); nothing here is edited by hand.",
        "",
        f"Machine: {os.cpu_count()} cores (x86-64), Python {sys.version.split()[0]}, "
        f"libvips {_vips_version()} (pyvips-binary), Pillow {_pillow_version()}, "
        f"{_sharp_version()}. {idle}; "
        + "".join(f"{load:.2f} before {name}; " for name, load in section_loads.items())
        + f"{load_after:.2f} at the end (other engineers' work shares this machine; each "
        f"section first waits, up to {args.section_wait:.0f} s, for the load to fall below "
        f"0.5). The whole run took {minutes:.1f} min.",
        "",
        f"Corpus: {corpus_line}: real photographs from Debian's gnome-backgrounds and "
        "mate-backgrounds, plus camera-like 12 MP JPEGs (4032×3024, q92, EXIF orientation "
        "1/3/6/8, camera tags) made from them (`bench/corpus.py`; fetched at bench time, not "
        "committed).",
        "",
        "The job, identical for every engine: renditions of 1600, 800 and 256 px on the long "
        "edge (never upscaled), each as JPEG q82 (Huffman-optimised, 4:2:0, baseline) and WebP "
        "q80 (effort/method 4), EXIF orientation applied, sRGB (a colour transform only when "
        "the file carries a profile), no metadata in the outputs. Each engine decodes once and "
        "cascades (1600 → 800 → 256, Lanczos3). "
        f"Medians of {args.repeats} interleaved runs.",
        "",
        "- **imgpipe**: `imgpipe.engine.render_unhashed()`, what a rendering process "
        "runs: header checks and limits, one decode, the cascade, six encodes, and the "
        "record's metadata (EXIF subset, phash, blurhash, dominant colour). The original's "
        "sha256 is the caller's (the local store's ETag, hashed as the upload is written: "
        "about 2 ms for a 3 MB photo): the end-to-end section counts it. "
        + (
            "Its defaults *are* the identical settings (every RenditionSpec encoder field at "
            "the peers' values), so one row serves both."
            if identical_is_default
            else "Its defaults differ from the identical settings: both rows are shown."
        ),
        "- **floor**: only what these outputs need: libvips' shrink-on-load decode, the "
        "cascade, and the six encodes written as imgpipe writes them, by Pillow "
        "(`bench/engines/floor.py`).",
        "- **Pillow**: best practice (`bench/engines/pillow_engine.py`): JPEG draft mode, "
        "exif_transpose, ImageCms only when a profile is present, LANCZOS with "
        "reducing_gap=3.0, optimize=True, WebP method=4.",
    ]
    if sharp_missing is None:
        lines.append(
            "- **sharp** (`bench/sharp/render.mjs`): rotate(), resize(…, {fit: 'inside', "
            "withoutEnlargement: true}) from the file for 1600 px, then from raw pixels for 800 "
            "and 256, jpeg({quality: 82, mozjpeg: false}), webp({quality: 80, effort: 4}). "
            "**sharp (its defaults)** is the same with jpeg() and webp() left at sharp's "
            "defaults: JPEG quality 80 instead of 82 (its WebP defaults are already q80, "
            "effort 4)."
        )
    else:
        lines.append(f"- sharp: not measured ({sharp_missing}).")
    lines += [
        "",
        "SSIM: mean SSIM (Gaussian 11×11 window, σ 1.5, K1 0.01, K2 0.03) of each rendition's "
        "luma against a reference: the original decoded at full size (no shrink-on-load), "
        "rotated, resized in float with Lanczos3 to the rendition's exact size "
        "(`bench/quality.py`), averaged over the six renditions (the per-rendition figures "
        "are below).",
        "",
        "## Side by side",
        "",
        "| engine | images/s, one core | MP/s, one core | images/s, two processes | "
        "peak RSS, one process (after imports) | output KB per image (JPEG + WebP) | "
        "SSIM JPEG / WebP | "
        f"speed vs {base} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, run in one.items():
        rate = n / run.seconds
        lines.append(
            f"| {label} | {rate:.2f} | {total_mp / run.seconds:.1f} | "
            f"{n / two[label].seconds:.2f} | {run.peak_rss_mb:.0f} MB "
            f"({run.baseline_rss_mb:.0f}) | "
            f"{kb(run):.0f} ({kb(run, '.jpg'):.0f} + {kb(run, '.webp'):.0f}) | "
            f"{mean_ssim(label, '.jpg'):.4f} / {mean_ssim(label, '.webp'):.4f} | "
            f"{fmt_ratio(one[base].seconds / run.seconds)} |"
        )
    names = sorted({k for run in one.values() for k in run.bytes})
    lines += [
        "",
        "Per rendition (KB per image, SSIM):",
        "",
        "| engine | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for label, run in one.items():
        cells = [
            f"{run.bytes[k] / n / 1000:.1f} / {ssim[label].get(k, float('nan')):.4f}" for k in names
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    ip, fl, peer = one["imgpipe"], one["floor"], one[best_peer]
    lead = peer.seconds / ip.seconds
    floor_ratio = ip.seconds / fl.seconds

    def per_image(run: EngineRun) -> float:
        return run.seconds / n * 1000

    def encoding(run: EngineRun) -> float:
        return sum(run.encode_ms) / n

    lines += [
        "",
        "Where the time goes on one core (ms per image; the encodes are the CPU time of Pillow's "
        "Image.save, through which every Python engine here writes its JPEG and WebP files, "
        "with the same libjpeg-turbo and libwebp):",
        "",
        "| engine | ms per image | in the six encodes | everything else |",
        "|---|---:|---:|---:|",
    ]
    for label, run in one.items():
        if run.encode_ms and encoding(run) > 0:
            lines.append(
                f"| {label} | {per_image(run):.0f} | {encoding(run):.0f} "
                f"({encoding(run) / per_image(run):.0%}) | "
                f"{per_image(run) - encoding(run):.0f} |"
            )
    # Only when both were clocked: with libvips writing the files (encoder="libvips"), no
    # Image.save runs and there is no encode figure to reason from.
    if encoding(ip) > 0 and encoding(fl) > 0:
        room = per_image(peer) / GOAL_LEAD - encoding(ip)
        floor_rest = per_image(fl) - encoding(fl)
        verdict = (
            "out of reach even of the floor" if floor_rest > room else "within what the floor does"
        )
        ceiling = CEILING.format(
            goal=GOAL_LEAD,
            best=best_peer,
            need=per_image(peer) / GOAL_LEAD,
            room=room,
            floor_rest=floor_rest,
            verdict=verdict,
            free=per_image(peer) / encoding(ip),
        )
        lines += ["", ceiling]

    def working(label: str) -> float:
        return one[label].peak_rss_mb - one[label].baseline_rss_mb

    lowest_working = min(others, key=working)

    def compare(label: str) -> str:
        smaller = sum(ip.bytes[k] <= one[label].bytes.get(k, 0) for k in names)
        better = sum(ssim["imgpipe"][k] >= ssim[label][k] - 0.0005 for k in names)
        return (
            f"vs {label}: {smaller}/{len(names)} renditions no larger "
            f"({kb(ip):.0f} vs {kb(one[label]):.0f} KB per image), {better}/{len(names)} no "
            f"worse (mean SSIM {statistics.mean(ssim['imgpipe'].values()):.4f} vs "
            f"{statistics.mean(ssim[label].values()):.4f})"
        )

    def met(label: str) -> bool:
        return all(
            ip.bytes[k] <= one[label].bytes.get(k, 0)
            and ssim["imgpipe"][k] >= ssim[label][k] - 0.0005
            for k in names
        )

    lines += [
        "",
        "## The goals",
        "",
        "| goal | measured | met |",
        "|---|---|---|",
        f"| imgpipe ≥ {GOAL_LEAD}× the best peer's images/s per core (best peer: {best_peer}) | "
        + ", ".join(f"{fmt_ratio(one[p].seconds / ip.seconds)} {p}" for p in peers)
        + f" | {'yes' if lead >= GOAL_LEAD else 'no'} |",
    ]
    for label in peers:
        lines.append(
            f"| outputs no larger and no worse (SSIM ≥ theirs − 0.0005), per rendition | "
            f"{compare(label)} | {'yes' if met(label) else 'no'} |"
        )
    lines += [
        f"| within 1.15× of the floor at identical settings | {fmt_ratio(floor_ratio)} | "
        f"{'yes' if floor_ratio <= 1.15 else 'no'} |",
        f"| the lowest peak RSS | imgpipe {ip.peak_rss_mb:.0f} MB; lowest of the others: "
        f"{lowest_other} {one[lowest_other].peak_rss_mb:.0f} MB | "
        f"{'yes' if ip.peak_rss_mb <= one[lowest_other].peak_rss_mb else 'no'} |",
        f"| (the same, over {len(LAYOUT_PADS)} ways of starting the process: median, range) | "
        + "; ".join(
            f"{label} {statistics.median(v):.0f} MB ({min(v):.0f}–{max(v):.0f})"
            for label, v in layouts.items()
        )
        + f" | {_layout_verdict(layouts)} |",
        f"| (the same, less what each process holds once its imports are done) | imgpipe "
        f"{working('imgpipe'):.0f} MB; lowest of the others: {lowest_working} "
        f"{working(lowest_working):.0f} MB | "
        f"{'yes' if working('imgpipe') <= working(lowest_working) else 'no'} |",
    ]
    overhead = None
    if end_to_end:
        e2e_rate = statistics.median(r.per_second for r in end_to_end)
        raw_rate = n / two["imgpipe"].seconds
        overhead = raw_rate / e2e_rate - 1
        lines.append(
            f"| pipeline overhead < 10% (end to end vs the raw engine, 2 workers) | "
            f"{overhead * 100:.1f}% | {'yes' if overhead < 0.10 else 'no'} |"
        )
    if sustained:
        sustained_rate = statistics.median(e.per_second for e, _ in sustained)
        sustained_raw = statistics.median(n * SUSTAINED_ROUNDS / r.seconds for _, r in sustained)
        held = sustained_raw / sustained_rate - 1
        lines.append(
            f"| (the same, sustained: {n * SUSTAINED_ROUNDS} uploads, the corpus "
            f"{SUSTAINED_ROUNDS} times over) | {held * 100:.1f}% | "
            f"{'yes' if held < 0.10 else 'no'} |"
        )
    lines += ["", WHY.format(best=best_peer)]

    with Image.open(largest) as im:
        largest_desc = (
            f"{largest.name}, {im.width}×{im.height} ({im.width * im.height / 1e6:.1f} MP), "
            f"{largest.stat().st_size / 1e6:.1f} MB, "
            f"{'progressive' if im.info.get('progressive') else 'baseline'} JPEG"
        )
    lines += [
        "",
        "## Memory: where the peak comes from",
        "",
        f"Each engine rendering only the corpus' largest file ({largest_desc}), one process, "
        f"medians of {args.repeats}: every engine's peak over the whole corpus is this image's.",
        "",
        "| engine | peak RSS | after imports | the render's own |",
        "|---|---:|---:|---:|",
    ]
    for label, run in alone.items():
        lines.append(
            f"| {label} | {run.peak_rss_mb:.0f} MB | {run.baseline_rss_mb:.0f} MB | "
            f"{run.peak_rss_mb - run.baseline_rss_mb:.0f} MB |"
        )
    lines += [
        "",
        "The peak also depends on where glibc's heap happens to put things, and that moves "
        "with how the process was started: its environment, working directory and PYTHONPATH "
        "shift the interpreter's first allocations, which decides whether a large freed "
        "block is reused or the heap grows. So the peak over the whole corpus, one pinned "
        "process, once per environment that differs only in the length of one unused "
        "variable (BENCH_ENV_PAD, characters):",
        "",
        "| engine | " + " | ".join(str(pad) for pad in LAYOUT_PADS) + " | median |",
        "|---|" + "---:|" * (len(LAYOUT_PADS) + 1),
        *(
            f"| {label} | "
            + " | ".join(f"{mb:.0f}" for mb in peaks)
            + f" | {statistics.median(peaks):.0f} MB |"
            for label, peaks in layouts.items()
        ),
    ]
    lines += [
        "",
        "What a fresh interpreter holds after each import a rendering process needs "
        "(VmRSS, one run):",
        "",
        "| import | adds |",
        "|---|---:|",
        *(f"| {what} | {mb:.0f} MB |" for what, mb in imports[: len(IMPORT_STEPS)]),
        f"| in all | {sum(mb for _, mb in imports[: len(IMPORT_STEPS)]):.0f} MB |",
        "",
        "What the serve process imports on top, and a rendering process no longer does "
        "(the same interpreter, after the rows above):",
        "",
        "| import | adds |",
        "|---|---:|",
        *(f"| {what} | {mb:.0f} MB |" for what, mb in imports[len(IMPORT_STEPS) :]),
        "",
        MEMORY_TEXT.format(
            extra=alone["imgpipe"].baseline_rss_mb - alone["Pillow"].baseline_rss_mb,
            render_cmp=_more_or_less(
                (alone["imgpipe"].peak_rss_mb - alone["imgpipe"].baseline_rss_mb)
                - (alone["Pillow"].peak_rss_mb - alone["Pillow"].baseline_rss_mb)
            ),
        ),
    ]

    if lever_rows:
        b = lever_rows[0]
        lines += [
            "",
            "## Each optimisation, one at a time",
            "",
            f"On the floor pipeline (`bench/engines/floor.py` knobs), one core, "
            f"{len(files[::3])} of the photos, medians of {args.repeats} interleaved runs; each "
            "row changes one thing from the baseline. Δ time is per image; bytes are the "
            "JPEG and WebP totals; SSIM the mean over the three sizes.",
            "",
            "| change | ms per image | Δ time | peak RSS | Δ JPEG bytes | Δ WebP bytes "
            "| SSIM JPEG | SSIM WebP |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in lever_rows:
            lines.append(
                f"| {r.what} | {r.ms_per_image:.0f} | "
                f"{(r.ms_per_image / b.ms_per_image - 1) * 100:+.0f}% | {r.peak_rss_mb:.0f} MB | "
                f"{(r.jpeg_bytes / b.jpeg_bytes - 1) * 100:+.1f}% | "
                f"{(r.webp_bytes / b.webp_bytes - 1) * 100:+.1f}% | "
                f"{r.jpeg_ssim:.4f} | {r.webp_ssim:.4f} |"
            )
        lines += ["", LEVERS_TEXT]

    if webp_rows:
        faster_and_fit = [
            r.what
            for r in webp_rows[1:]
            if r.ms_per_image < 0.9 * webp_rows[0].ms_per_image and r.meets(webp_rows[0])
        ]
        lines += [
            "",
            "## libwebp's own settings, searched",
            "",
            WEBP_TEXT.format(n=len(files[::3])),
            "",
            *webp_search.table(webp_rows),
            "",
            (
                "Faster by 10% or more *and* no larger, no worse at every size: "
                + ", ".join(faster_and_fit)
                + "."
                if faster_and_fit
                else "No row is 10% faster and also no larger and no worse at every size: "
                "every cut in WebP time here is paid for in bytes, SSIM or both. Since WebP "
                "encoding is about two thirds of every engine's time, this is why no engine, "
                "imgpipe included, can lead its peers by 1.25× at their output size and quality."
            ),
        ]

    if end_to_end:
        best = min(
            end_to_end,
            key=lambda r: abs(r.per_second - statistics.median(x.per_second for x in end_to_end)),
        )
        lines += [
            "",
            "## Local end to end",
            "",
            f"`imgpipe serve --workers 2` on loopback, a fresh data folder; the {n} photos "
            "uploaded one after the other with `POST /images` (multipart bodies built before "
            "the clock starts, sent with http.client), then, every "
            f"{e2e_bench.POLL_S:g} s, `GET /images?status=PENDING&limit=1` and "
            "`?status=PROCESSING&limit=1` until both are empty, then the records read once. "
            "Seconds run from the first upload sent to the last record's processedAt (the "
            "poller's period is not the pipeline's). The server runs two job threads per "
            "rendering process (README, How it works). "
            f"Latency is the record's processedAt − uploadedAt (all {n} queued "
            f"at once, so it includes waiting for a worker). Median of {len(end_to_end)} runs.",
            "",
            "| images | seconds | of which uploading | images/s | latency p50 | latency p95 "
            "| render in the worker (median durationMs) | raw engine, 2 processes | overhead |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {n} | {best.seconds:.2f} | {best.upload_seconds:.2f} | {best.per_second:.2f} | "
            f"{best.latency(0.5):.0f} ms | "
            f"{best.latency(0.95):.0f} ms | {statistics.median(best.render_ms):.0f} ms | "
            f"{n / two['imgpipe'].seconds:.2f} images/s | {(overhead or 0) * 100:.0f}% |",
        ]
        raw_ms = statistics.median(two["imgpipe"].per_image_ms)
        in_worker = statistics.median(best.render_ms) / raw_ms - 1
        # Both runs in core-ms per image (2 cores x wall time / images): the ratio of the two
        # is the throughput ratio, so the rows below add up to the overhead exactly.
        raw_core = 2 * two["imgpipe"].seconds * 1000 / n
        raw_cpu = statistics.mean(two["imgpipe"].per_image_ms)
        e2e_core = 2 * best.seconds * 1000 / n
        renderers = best.renderers_cpu_s * 1000 / n
        server_ms = best.server_cpu_s * 1000 / n
        client_ms = best.client_cpu_s * 1000 / n
        idle = e2e_core - renderers - server_ms - client_ms
        tail = best.tail_s * 1000 / n  # one core idle while the other renders the last image
        raw_idle = raw_core - raw_cpu
        rows = [
            (
                "rendering processes: the render, plus taking the original and handing back "
                "the files over a pipe",
                renderers,
                renderers - raw_cpu,
            ),
            (
                "the serve process: HTTP and multipart, the store's writes (fsynced), SQLite, "
                "events, the job threads",
                server_ms,
                server_ms,
            ),
            ("this benchmark's client: the uploads and the polling", client_ms, client_ms),
            (
                f"no core busy, the tail: the last image ({best.last_bytes / 1e6:.1f} MB, "
                f"{best.last_render_ms:.0f} ms) rendering alone for {best.tail_s:.2f} s after "
                "the one before it finished",
                tail,
                tail,
            ),
            (
                "no core busy, the rest: before the first upload lands, hand-offs between jobs",
                idle - tail,
                idle - tail - raw_idle,
            ),
        ]
        lines += [
            "",
            "Overhead is the raw engine's images/s (two processes, corpus pre-split, no I/O) over "
            "the end-to-end images/s, minus one. Where it goes, from the CPU time of every "
            "process over the run (/proc; counted to the poll that saw the last record, at most "
            f"{e2e_bench.POLL_S:g} s after it, when only that poll runs): each row is "
            "core-milliseconds per image, end to end "
            f"and its difference from the raw engine's run ({raw_cpu:.0f} ms of CPU per image, "
            f"{raw_idle:.0f} ms idle: {raw_core:.0f} core-ms per image in all). The differences "
            "add up to the overhead. The worker's own clock (durationMs, from the lease to the "
            "record: the render, handing the original over and writing the files) is "
            f"{in_worker * 100:+.0f}% over the raw engine's per-image time ({raw_ms:.0f} ms).",
            "",
            "| where | core-ms per image, end to end | more than the raw engine "
            "| share of the raw |",
            "|---|---:|---:|---:|",
        ]
        for what, value, extra in rows:
            lines.append(
                f"| {what} | {value:.0f} | {extra:+.0f} | {extra / raw_core * 100:+.0f}% |"
            )
        lines += [
            f"| total: 2 cores × {best.seconds:.2f} s / {n} images | {e2e_core:.0f} | "
            f"{e2e_core - raw_core:+.0f} | {(e2e_core / raw_core - 1) * 100:+.0f}% |",
        ]
        if reordered:
            rate = statistics.median(r.per_second for r in reordered)
            lines += [
                "",
                f"The same {n} uploads with the largest file sent first and the rest in name "
                f"order (a fresh server each time, taking turns with the runs above; median of "
                f"{len(reordered)}): {rate:.2f} images/s, overhead "
                f"{(n / two['imgpipe'].seconds / rate - 1) * 100:.0f}%; the last image to finish "
                f"rendered alone for {statistics.median(r.tail_s for r in reordered):.2f} s "
                f"(name order: {best.tail_s:.2f} s). The goal's row keeps the name order.",
            ]
        if sustained:
            rounds_n = n * SUSTAINED_ROUNDS
            lines += [
                "",
                f"Sustained: the corpus {SUSTAINED_ROUNDS} times over, {rounds_n} uploads in "
                "name order (a duplicate is rendered in full; it only gets duplicateOf), a "
                "fresh server each time, taking turns with the raw engine on the same list "
                f"(median of {len(sustained)}): {sustained_rate:.2f} images/s end to end "
                f"against {sustained_raw:.2f} raw, overhead {held * 100:.1f}%; latency p50 "
                f"{statistics.median(e.latency(0.5) for e, _ in sustained):.0f} ms (all "
                f"{rounds_n} queued at once). Per image, in core-ms (medians of the runs): "
                f"the serve process {_per_image(sustained, 'server_cpu_s'):.0f}, the rendering "
                f"processes {_per_image(sustained, 'renderers_cpu_s'):.0f}, the client "
                f"{_per_image(sustained, 'client_cpu_s'):.1f}, no core busy "
                f"{_per_image(sustained, 'idle_s'):.0f} (the tail "
                f"{_per_image(sustained, 'tail_s'):.0f} of it), against "
                f"{2000 / sustained_raw:.0f} for the raw engine's run. What is left once "
                "the batch's ends weigh little is the server's own work, the rendering "
                "processes' hand-offs and the client.",
            ]
        lines += ["", E2E_TEXT]
    if loads:
        lines += [
            "",
            "## API under load (loopback)",
            "",
            "wrk, 1 thread, 8 connections, 10 s per route, against the server above after its "
            f"{n} images were processed (rate limit off for this server; wrk shares the 2 cores).",
            "",
            "| route | requests/s | p50 | p99 | non-2xx |",
            "|---|---:|---:|---:|---:|",
        ]
        for load in loads:
            route = "GET /images/{id}" if load.route.startswith("/images/") else f"GET {load.route}"
            lines.append(
                f"| `{route}` | {load.requests_per_s:.0f} | {load.p50_ms:.1f} ms | "
                f"{load.p99_ms:.1f} ms | {load.non_2xx} |"
            )
    if api_error:
        lines += ["", "## API under load (loopback)", "", f"Not measured: {api_error}"]
    render_ms = statistics.median(one["imgpipe"].per_image_ms)
    if lam is not None:
        arm = lambda_cost.cost_per_million(
            render_ms, lam.worker_memory_mb, lambda_cost.ARM64_PER_GB_S
        )
        x86 = lambda_cost.cost_per_million(
            render_ms, lam.worker_memory_mb, lambda_cost.X86_PER_GB_S
        )
        lines += [
            "",
            "## Lambda",
            "",
            f"The zip `imgpipe deploy` ships (`imgpipe.packaging.build_lambda_zip`, python3.13, "
            f"arm64): **{lam.zip_mb:.1f} MB** zipped, {lam.unzipped_mb:.0f} MB unzipped. Cold "
            "import: a fresh python3.13 process importing the handler from the unpacked zip "
            "(the x86_64 build of the same zip, with bytecode), boto3 on a path of its own as "
            "the runtime provides it; median of 9, taking turns; page cache warm, so Lambda's "
            "first read of the code from its storage is not included.",
            "",
            "| handler | cold import |",
            "|---|---:|",
        ]
        for name, ms in lam.import_ms.items():
            lines.append(f"| `{name}.handler` | {ms:.0f} ms |")
        lines += [
            "| worker + what its first render imports (pyvips, Pillow) "
            f"| {lam.first_render_import_ms:.0f} ms |",
            "",
            f"Cost per 1M images: the median per-image render time on one core here "
            f"({render_ms:.0f} ms) × {lam.worker_memory_mb} MB ({lam.memory_source}; at 2048 MB "
            "Lambda gives a single-threaded render a whole vCPU) at Lambda's prices as of "
            f"{lambda_cost.PRICES_DATE} (us-east-1, first tier: arm64 "
            f"${lambda_cost.ARM64_PER_GB_S} per GB-s, x86 ${lambda_cost.X86_PER_GB_S}; "
            f"$0.20 per 1M requests, one request per SQS batch of {lambda_cost.BATCH_SIZE}): "
            f"**${arm:.2f} per 1M images on arm64** (${x86:.2f} on x86_64). S3 reads and writes, "
            "DynamoDB, SQS and the cold starts are not in it, and the timing is this machine's "
            "x86 core standing in for a Graviton one: take it as an estimate to within tens of "
            "per cent.",
        ]
    elif lambda_error:
        lines += ["", "## Lambda", "", f"Not measured: {lambda_error}"]

    if cli:
        lines += [
            "",
            "## `imgpipe process` (interpreter start and imports included)",
            "",
            "| command | seconds | images/s | MP/s | peak RSS, whole process tree |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, run in cli.items():
            lines.append(
                f"| `imgpipe process --out DIR {name}` | {run.seconds:.2f} | "
                f"{n / run.seconds:.2f} | {total_mp / run.seconds:.1f} | {run.peak_mb:.0f} MB |"
            )
        lines += [
            "",
            "## Serve's worker pool: threads or processes (2 workers, warm)",
            "",
            "| pool | seconds | images/s | peak RSS |",
            "|---|---:|---:|---:|",
        ]
        for name, run in pools.items():
            peak = run.peak_mb - baseline_mb
            lines.append(
                f"| 2 {name} | {run.seconds:.2f} | {n / run.seconds:.2f} | {peak:.0f} MB |"
            )
        lines += [
            "",
            f"(Both peaks are of the benchmark script's process tree, less the script's own "
            f"{baseline_mb:.0f} MB, the corpus bytes included: the threads' is the renders "
            "in the script itself, the processes' is the two rendering processes. Until "
            "this run the processes' row kept the script's own memory in, which made "
            "processes look about 400 MB hungrier than they are.)",
        ]
    if helper:
        largest_at = files.index(largest)
        lines += [
            "",
            "## A second core for one image's encodes",
            "",
            "| encodes | one process, images/s | median ms per image | the largest file, ms "
            "| two processes, images/s | peak RSS, one process |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for label, by in helper.items():
            alone_run, both = by[1], by[2]
            lines.append(
                f"| {label} | {n / alone_run.seconds:.2f} | "
                f"{statistics.median(alone_run.per_image_ms):.0f} | "
                f"{alone_run.per_image_ms[largest_at]:.0f} | {n / both.seconds:.2f} | "
                f"{alone_run.peak_rss_mb:.0f} MB |"
            )
        lines += ["", HELPER_TEXT]
    lines += ["", "![images/s per core and output size per engine](benchmarks.png)", ""]

    text = "\n".join(lines)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    chart.draw(
        [
            (label, n / run.seconds, kb(run), statistics.mean(ssim[label].values()))
            for label, run in one.items()
        ],
        args.out.with_suffix(".png"),
        f"{n} photos, 6 renditions each, identical settings ({os.cpu_count()}-core x86 machine)",
    )
    print(text)
    print(f"written to {args.out} and {args.out.with_suffix('.png').name}")


def _per_image(runs: list[tuple[e2e_bench.EndToEnd, EngineRun]], field: str) -> float:
    """The median over `runs` of an end-to-end figure in seconds, as ms per image."""
    return float(statistics.median(getattr(e, field) / e.images * 1000 for e, _ in runs))


def _vips_version() -> str:
    import pyvips

    return f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}"


def _pillow_version() -> str:
    import PIL

    return str(PIL.__version__)


def _sharp_version() -> str:
    script = (
        "const s=require('sharp');console.log(s.versions.sharp+' (libvips '+s.versions.vips+')')"
    )
    try:
        done = subprocess.run(
            ["node", "-e", script],
            cwd=SHARP,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "sharp not installed"
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)
    return f"sharp {done.stdout.strip()}, Node {node.stdout.strip()}"


WHY = """Why the lead is small: at identical settings most of every engine's time is spent in
the same two encoders (libwebp method 4 above all, then libjpeg), which produce the same bytes
whichever engine calls them (see the per-rendition table), so no engine can lead by more than
the share it owns: decoding, resizing and the work around the encoders. That share is about a
third of the time, and it is where imgpipe is fastest. The knobs that cut encoder time by a
lot (WebP effort 2 or below; libwebp's own settings, searched one by one below: fewer
segments, no intra 4x4) all make the WebP files larger, lower their SSIM, or both, so none
meets "no larger, no worse". imgpipe keeps such settings as options
(RenditionSpec fields), not as defaults. Best peer in this run: {best}."""


# The goal: imgpipe's images/s per core over the best peer's.
GOAL_LEAD = 1.25

CEILING = """What that leaves: for imgpipe to lead {best} by {goal}×, it would have to render an
image in {need:.0f} ms, of which the six encodes already take the figure above; that leaves
{room:.0f} ms per image for everything else. The floor, which does nothing else but the
shrink-on-load decode and the cascade, spends {floor_rest:.0f} ms there. So at these output
settings {goal}× is {verdict}: the decode (libjpeg-turbo in every engine) and the encodes are
shared, and even if everything but the six encodes, the decode included, took no time at all,
the lead would be {free:.2f}×."""


def _layout_verdict(layouts: dict[str, list[float]]) -> str:
    """yes / no on the medians; "tie" when each median lies within the other's range."""
    mine = layouts["imgpipe"]
    (other,) = (v for label, v in layouts.items() if label != "imgpipe")
    if min(other) <= statistics.median(mine) <= max(other) and min(mine) <= statistics.median(
        other
    ) <= max(mine):
        return "tie (within each other's range)"
    return "yes" if statistics.median(mine) <= statistics.median(other) else "no"


def _more_or_less(mb: float) -> str:
    if round(mb) == 0:
        return "about the same as"
    return f"{abs(mb):.0f} MB {'more' if mb > 0 else 'less'} than"


MEMORY_TEXT = """So the peak is one decode's: libjpeg holds every DCT coefficient of a
progressive JPEG until its last scan, at full size whatever the shrink-on-load (about 2 bytes
per sample), and no engine here avoids that. What sets imgpipe above Pillow is what its process
holds before any image, {extra:.0f} MB more than Pillow's (the tables above), libvips above
all; the render's own is {render_cmp} Pillow's. The cuts,
each measured over the corpus on one pinned core (three interleaved runs, medians):
the analysis of a 32x32 picture (pHash, blurhash, dominant colour) is pure Python instead of
numpy, 60.1 to 48.6 MB after imports at the same speed; libvips reads the upload where it lies
(a Source over the caller's bytes) instead of through pyvips' *_buffer loaders, which copy the
whole file into a blob of libvips' own (with the first: corpus peak 190.5 to 165.1 MB); a
rendering process imports no pydantic, no settings and no CLI (it starts as `python -c`, the
render's options cross to it as plain data and the record's metadata comes back as plain
data): 48.7 to 34.9 MB after imports, peak 164.7 to 154.3 MB, 3.13 images/s either way; and
malloc_trim(0) before a progressive JPEG's decode, the one that sets the peak, hands back what
glibc kept from earlier images: peak 154.3 to 145.7 MB, 3.13 and 3.12 images/s (after every
render instead, the trim lowered the peak by 14 MB for 2.2% fewer images/s, and a fixed
MALLOC_MMAP_THRESHOLD_ by 10 MB for 3%; neither is kept, nor MALLOC_ARENA_MAX or
MALLOC_TRIM_THRESHOLD_, which did not move the peak); then a rendering process loads no
OpenSSL (its parent holds the original, and OpenSSL for its own uses, so it hashes the
original while the child renders), no multiprocessing (the socket's framing is imgpipe's own,
render_child.Channel), no statistics and no _strptime: 34.9 to 29.0 MB after imports, peak
146.9 to 142.3 MB in one set of runs and 136.5 in another (the layout, above), 3.12 and 3.16
images/s; and no dataclasses, whose import brings inspect, ast and dis (the render's plain
data are named tuples): 28.9 to 28.0 MB after imports (three runs each, bytecode compiled).
Once the benchmark's own harness stopped importing dataclasses into every engine's process
as well, Pillow's peak went from 136–144 MB (its layouts in the earlier full runs) to 125–127
in every environment. A fixed MALLOC_MMAP_THRESHOLD_ of 16 MB held imgpipe at its low layout
(136.5 MB in all five environments tried, against 136–142 without) for 1–2% fewer images/s:
not kept.
imgpipe's modules compiled to bytecode beforehand (`make bytecode`, and this benchmark first)
instead of from source in each process: 34.9 to 34.0 MB after imports, peak unchanged (146.9,
146.5 MB); what it saves is start-up: a new rendering process was ready and had rendered a
small JPEG in 139–161 ms instead of 161–194 (three runs each). serve's rendering processes
also trim once they have been idle for a second: after the corpus they held 90 and 98 MB,
then 45 and 46, and now 36 and 45 (14.7 MB each at start, where they held 22)."""

E2E_TEXT = """What was done about it, and what is left. FastAPI's `jsonable_encoder` walked every
JSON answer again although the records are JSON-ready: skipping it doubled `GET /images`
(121 to 252 requests/s on this machine, `python bench/e2e.py`, one run each) and cut the serve
process's CPU in this run by about a tenth (1.07 to 0.95 s). httptools and uvloop, uvicorn's
own speed-ups, took `GET /images/{id}` from 1,072 to 1,407 requests/s.

Two job threads per rendering process. With one, a rendering process sat idle while its
thread wrote the last image's six files (each fsynced) and its record, then leased and read
the next original: 23 to 25 ms between the end of one render and the start of the next,
measured inside the rendering processes (a render function that logs both, 96 uploads, two
runs). Now a thread reads its next original first, leases the image only once a process is
free (a gate as wide as the process count, so neither the lease nor durationMs counts a wait),
and hands the process back as soon as the render returns: 7 ms between renders, most of it
then carrying the 3 MB original and the renditions across the socket. Throughput gained less than
that: five interleaved pairs of 96-upload runs gave 5.23 then 5.27 images/s (medians; single
pairs from +1% to +4%), because the writes the idle process waited for had used that core.
Two earlier tries did not show a gain: one leased the image before waiting for a process,
which put the wait in the lease and in durationMs (674 ms median for a 310 ms render); one
leased once a process was free but read the original after that.

The benchmark's own client shares the two cores, so it was made lighter: the poller listed
the whole batch every 0.25 s (that cost the serve process 1.7 and the client 0.8 core-ms per
image, three pairs of 96-upload runs), and httpx framed each upload (2.3 CPU-ms per upload,
against 1.2 with the bodies built before the clock and sent with http.client). A `POST /images`
file then stayed in memory up to 4 MB instead of Starlette's 1 MB: past that, every chunk went
to a temporary file through a thread-pool hop, to be read back at once. That was 0.7 core-ms
per image in the serve process (32.3 to 31.6, three pairs); the third paragraph below
replaces it.

The original no longer passes through the serve process. The local store opens it
(`ObjectStore.open`: inside the data folder, a regular file, the event's version) and the
rendering process gets the open file's descriptor over its socket (SCM_RIGHTS) and reads it
itself; the serve process hashes it (sha256) through one 256 KB buffer while the child
renders (since the change below, only when the store does not know the hash already).
Before, the serve process read the 3 MB into its memory, copied it into the socket, and the
child copied it out. Four interleaved pairs of 96-upload runs against the commit
before: 5.26 then 5.37 images/s, the serve process 36.1 then 32.5 core-ms per image, the
rendering processes 328 then 325, no core busy 14.1 then 13.3 (medians). Not mmap for the
hash: a file cut short in place while mapped (a `cp` over it in the data folder) kills the
process with SIGBUS; read through a buffer, it hashes short and the newer version's event
renders again. On S3 (Lambda) the store's `open` is its `get`, and the render is in-process.

The local store's ETag is now the sha256 of the object, not S3's MD5, and it is the record's
`sha256` too. The store hashes an upload as it writes it (sha256 costs 1.8 CPU-ms for a 3 MB
photo here, with the CPU's SHA extensions; MD5 4.2), remembers it against the file's device,
inode, mtime and size, and `open` hands it over with the descriptor when the file opened is
that very file; so the render's caller no longer reads the original a second time to hash
it. A file dropped into the folder, or changed by hand since, is hashed as before. MD5 bought
nothing: an S3 ETag is an MD5 only for some uploads (not under the template's SSE-KMS, nor
multipart), so nothing may rely on it. Four interleaved pairs of 96-upload runs against the
commit before: 5.45 then 5.62 images/s, the serve process 31.8 then 24.9 core-ms per image
(medians; the new code ahead in all four pairs).

`POST /images` no longer goes through Starlette's form parser, and no upload is spooled twice.
Seven of the corpus' 24 photos are over 4 MB (80% of its bytes): each went to a temporary file
through a thread-pool hop per chunk, was read back, and was written again by the store. The
route now reads the multipart body itself as it arrives (python-multipart, as Starlette does)
and writes the file part straight into the store's spool (`ObjectStore.spool`): locally a
file in the data folder's `.imgpipe/tmp`, hashed as it is written, that `put` renames into
place; a signed `PUT` upload uses the same spool. Four interleaved pairs of 96-upload runs
against the commit before: 5.39 then 5.45 images/s, the serve process 29.3 then 22.6 core-ms
per image (medians; the new code ahead in all four pairs); a server with the API alone took
the same 96 uploads at 18.8 then 10.7 CPU-ms each (medians of three runs).

Kept from before, though small: the options cross to a rendering process only when they
change, and an original that does cross as bytes (from a store with no local files) goes raw
(`send_bytes`), not pickled with the options; py-spy --gil had put that pickling first in
the serve process's GIL time, and four interleaved pairs of runs gave the serve process 30.0
then 29.2 core-ms per image (medians; within the noise). The original's sha256 moved from
the rendering processes to the serve process, which hashes it while its child renders (so
that no rendering process loads OpenSSL: the memory section): three interleaved pairs gave
the serve process 30.8 then 34.6 core-ms per image, the rendering processes 336 then 334,
and 4.78 then 4.85 images/s.

What the serve process's 31 to 35 core-ms per image were, before the ETag change. A server
with the API alone (no workers, no watcher) took 96 uploads of this corpus at 17.5 CPU-ms each
(medians of three); perf put a quarter of that in copying the file into the page cache, a
fifth in the md5 of the ETag, a sixth in Python, and the rest in the kernel's socket,
page-fault and fsync work. The job side was the rest, about 15: the sha256 (2.3 CPU-ms for
3.1 MB read through the 256 KB buffer, against 3.0 to read the file and hash the bytes;
medians of five passes over the corpus), six fsynced rendition files, SQLite, events. Since
the change, perf of the serve process over a 96-upload run puts 17% of its CPU in the
kernel's copy of uploads and renditions into the page cache, half in the kernel in all,
28% in Python and 10% in hashing. The uploads watcher also sees each API upload and accepts
it again (a no-op, which the queue's deduplication absorbs): 0.7 core-ms per image against a
server without the watcher (three pairs, within the noise), so it stays. The page-cache copy
is dear on this VM: writing 3.1 MB to a
new file took 6.8 CPU-ms on memory the guest had not used yet and 1.0 ms on reused memory.
Together the durable write and the hash are about 7 core-ms per image, 2% of the raw
engine's 330, before any HTTP or SQLite.

The order of work. This corpus' largest file (16.4 MB, a 17.9 MP progressive JPEG, about 0.8 s
to render) sorts last, so it was uploaded last and, taken oldest first, rendered alone for 0.6
to 0.9 s while the other rendering process had nothing left to do: 7 to 9 points of the
24-upload overhead (the raw engine's pre-split run gives it to one process among eleven
others). A helper thread for its encodes (the section "A second core for one image's encodes",
below) shortened that only a little: most of its time is a single-threaded progressive decode.
So the local queue now starts a batch's costliest job (by the original's bytes, a proxy for its
time) once the rest of the batch, shared among the other rendering processes, is no more than
it; until then it hands out the oldest first, and no job is passed over by one sent more than a
second after it (`SqliteJobQueue._next`; SQS keeps no order, and Lambda gives each batch its
own worker). Here the largest file starts with about five smaller ones (12 MB) still queued,
which the other process renders meanwhile. Ten interleaved pairs of 24-upload runs against the
commit before: no core busy 40 then 11 core-ms per image (medians), the last image alone for
0.42 to 0.99 s then 0.04 to 0.26 s, images/s ahead in 7 of the 10 pairs (median +3%; this VM's
runs spread by ±10% that day; in the last six pairs, 4.09 then 4.36 images/s, the processes'
CPU 453 then 447 core-ms per image and no core busy 32 then 11). The price is that the smaller
images at a batch's end now finish last: the second-slowest latency (the p95 of 24) rose from
4.8 to 5.4 s, while the slowest, the batch's end, came sooner; p50 was 2.8 then 3.2 s (medians
of the ten; each side's runs spread over 2.4 to 3.5 s). Taking every batch's costliest first
instead (plain largest first) removed the tail as well but held every smaller image behind the
larger ones: p50 3.4 then 5.2 s and 3.6 then 4.2 s in two sets of four pairs; not kept."""

WEBP_TEXT = """Pillow, libvips and sharp expose only WebP's quality and method (effort); libwebp
has more knobs. `bench/webp_search.py` sets them directly through libwebp's C API (the build in
Pillow's wheel, the one that writes imgpipe's WebP renditions; its default configuration is
checked to write exactly Pillow's bytes), one change per row from the defaults every engine
uses (quality 80, method 4), on the same pixels ({n} photos, the floor's three sizes). Time is
the CPU time of the three WebP encodes per image; bytes and SSIM are per size, against the
full-resolution reference. "No larger, no worse" is the goals table's rule (SSIM within
0.0005) at every size."""

HELPER_TEXT = """Unpinned, imgpipe's render hands encodes to a helper thread while the
machine has an idle core: fewer runnable threads than cores in `/proc/loadavg`, counting the
render's own. Encodes start longest first, so the render's thread takes the 1600 px WebP
(about 60% of the encode time) and the helper takes the rest. Pillow 13 releases the GIL
while libwebp encodes, so the two overlap. The first column is one process rendering the
corpus an image at a time, as a lone upload renders. The largest file barely gains: a
progressive JPEG, it spends about 580 of its ~800 ms in libjpeg's single-threaded decode.
With two processes both cores are busy, so the helper mostly waits, looking again every
10 ms. Before the load check, an always-on helper cost 3.5% there in one set of runs (5.54
vs 5.74 images/s, medians of three) and 0.4% in another (5.53 vs 5.55); with the check, six
interleaved pairs gave 5.49 vs 5.52 (medians): no cost these runs can show. Pinned to one core
(the side-by-side table), the helper never starts."""


LEVERS_TEXT = """What each row shows, and what imgpipe does:

- **Shrink-on-load** (JPEG DCT scaling): libvips' own `thumbnail` keeps a factor of 2 for its
  Lanczos3 step, so a 12 MP photo bound for 1600 px is decoded at full size. imgpipe now picks
  the largest scale (1/2, 1/4, 1/8) that still covers the largest rendition, as Pillow's draft
  mode does: faster, and its outputs are the same as Pillow's in bytes and SSIM (libvips' own
  choice, and sharp's, are a little sharper and their files a little larger).
- **One decode, cascading**: 800 and 256 px are resized from the in-memory 1600 px image
  instead of decoding the original again.
- **No colour transform on untagged images**: `export_profile="srgb"` only when the file carries
  an ICC profile (the corpus' JPEGs carry none): the transform costs more than anything else here.
- **libvips cache and concurrency**: imgpipe turns the operation cache off (it would keep
  earlier images' pixels alive) and runs one libvips thread per rendering process; on a busy
  core more threads only add switching.
- **Encoder settings**: kept at the peers' values (WebP effort 4; JPEG Huffman optimisation,
  4:2:0, baseline). Effort 3 costs what 4 costs; effort 2 is much faster but larger and lower
  in SSIM; effort 6, progressive and trellis make smaller files at a large CPU cost;
  smart_subsample and 4:4:4 spend CPU (and bytes) on colour, which a luma SSIM does not see.
  Each is a RenditionSpec field for those who weigh it differently.
- **Who writes the files**: Pillow's builds of libjpeg-turbo and libwebp write the same bytes
  as libvips' (JPEG within a few bytes, WebP identical) with less CPU, so imgpipe hands the
  decoded, resized pixels to Pillow for JPEG and WebP (RenditionSpec `encoder`, default
  "pillow"; libvips still writes when metadata is kept, and for trellis or smart_subsample).
  The price: a copy of each size's pixels,
  made once per size and shared by its JPEG and WebP (~2% less CPU per image than one copy
  per format: 320 vs 327 ms, three interleaved runs on 10 photos).
- **Resize kernel**: Lanczos3 (every engine's default) gives the best SSIM; softer kernels make
  smaller files only by losing detail."""


if __name__ == "__main__":
    main()
