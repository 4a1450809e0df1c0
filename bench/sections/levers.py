"""The levers section: one optimisation at a time on the floor pipeline, each row one change
from the baseline, timed on one core with its output bytes and SSIM."""

from __future__ import annotations

import json
import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path

import quality
from engine_runs import OUT, EngineRun, median_engine, py_engine, run_engine

from sections.common import Bench

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


def measure(bench: Bench) -> list[LeverResult]:
    if "levers" in bench.skip:
        return []
    bench.settle("levers")
    return levers(bench.corpus.files[::3], bench.args.repeats)


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
