"""The side-by-side section: imgpipe, the floor, Pillow and sharp at identical settings on one
core and in two processes, their outputs' SSIM, and where each one's peak memory comes from."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import quality
from engine_runs import (
    ENGINE_ENV,
    OUT,
    Engine,
    EngineRun,
    median_engine,
    py_engine,
    run_engine,
    sharp_engine,
    sharp_ready,
    side_by_side,
)
from engines import imgpipe_engine

from sections.common import Bench

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

# How a process is started (its environment, working directory, PYTHONPATH) shifts where
# glibc's heap puts things, and so whether a freed block is reused or the heap grows: the same
# engine on the same corpus peaked several MB apart with nothing else changed (the page's
# memory part has the figures). Each such start is sampled by one more environment variable.
LAYOUT_PADS = (0, 700, 1500, 2600, 3800, 5000)


@dataclass(frozen=True)
class SideBySide:
    engines: list[Engine]
    identical_is_default: bool  # imgpipe's defaults are the identical settings: one row
    sharp_missing: str | None  # why sharp was not measured, if it was not
    one: dict[str, EngineRun]  # one pinned process per engine
    two: dict[str, EngineRun]  # two unpinned processes
    ssim: dict[str, dict[str, float]]  # per engine, per rendition
    alone: dict[str, EngineRun]  # the largest file only
    imports: list[tuple[str, float]]  # MB each import adds (import_steps)
    lowest_other: str  # the engine other than imgpipe and the floor with the lowest peak
    layouts: dict[str, list[float]]  # imgpipe's and lowest_other's peaks per LAYOUT_PADS

    @property
    def others(self) -> list[str]:
        return _others(self.one)


def _others(one: dict[str, EngineRun]) -> list[str]:
    """The engines that are neither imgpipe nor the floor."""
    return [label for label in one if label not in ("imgpipe", "floor")]


def measure(bench: Bench) -> SideBySide:
    files, repeats = bench.corpus.files, bench.args.repeats
    engines, identical_is_default, sharp_missing = the_engines()
    print("engines, one core ...", flush=True)
    one = side_by_side(engines, files, 1, True, repeats)
    print("engines, two processes ...", flush=True)
    two = side_by_side(engines, files, 2, False, repeats)
    print("quality ...", flush=True)
    ssim = quality_pass(engines, files)
    print("memory ...", flush=True)
    largest = bench.corpus.largest
    alone = {
        e.label: median_engine([run_engine(e, [largest], 1, True) for _ in range(repeats)])
        for e in engines
    }
    imports = import_steps()
    lowest_other = min(_others(one), key=lambda label: one[label].peak_rss_mb)
    layouts = peak_by_layout([e for e in engines if e.label in ("imgpipe", lowest_other)], files)
    return SideBySide(
        engines,
        identical_is_default,
        sharp_missing,
        one,
        two,
        ssim,
        alone,
        imports,
        lowest_other,
        layouts,
    )


def the_engines() -> tuple[list[Engine], bool, str | None]:
    """The engines, at identical output settings: imgpipe first (the end-to-end section's raw
    engine); whether imgpipe's defaults are those settings; why sharp is missing, if it is."""
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
    return engines, identical_is_default, sharp_missing


def quality_pass(engines: list[Engine], files: list[Path]) -> dict[str, dict[str, float]]:
    """Every engine's outputs written once (untimed), then SSIM against the reference."""
    shutil.rmtree(OUT, ignore_errors=True)
    outputs = {}
    for engine in engines:
        run_engine(engine, files, 2, pin=False, out=OUT / engine.slug)
        outputs[engine.label] = OUT / engine.slug
    return quality.score(files, outputs)


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


def peak_by_layout(engines: list[Engine], files: list[Path]) -> dict[str, list[float]]:
    """Each engine's peak RSS over the corpus (one pinned process) once per LAYOUT_PADS."""
    peaks: dict[str, list[float]] = {e.label: [] for e in engines}
    for pad in LAYOUT_PADS:
        for engine in engines:
            peaks[engine.label].append(run_engine(engine, files, 1, True, pad=pad).peak_rss_mb)
    return peaks
