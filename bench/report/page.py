"""The page, docs/benchmarks.md, and its chart: the header (the machine and its load, the
corpus, the job, the engines) and then every part in the page's order, written and printed."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys

import chart
from engine_runs import SHARP
from sections.results import Results

from report import aws_lambda, goals, memory, on_request, pipeline, pools, tuning
from report.engines import Figures, side_by_side, time_on_one_core


def write(results: Results) -> None:
    """docs/benchmarks.md (or --out) and the chart beside it; the page also goes to stdout."""
    f = Figures(results.side, results.bench.corpus)
    lines = [
        *header(results),
        *side_by_side(f),
        *time_on_one_core(f),
        *goals.goals(f, results.e2e),
        *memory.memory(results.side, results.bench),
        *tuning.levers(results.levers, results.bench),
        *tuning.webp(results.webp, results.bench),
        *pipeline.end_to_end(results.e2e, f),
        *pipeline.api(results.e2e, f.n),
        *on_request.marked(on_request.on_request(results.on_request)),
        *aws_lambda.aws_lambda(results.aws, f),
        *pools.local(results.local, results.bench.corpus),
        "",
        "![images/s per core and output size per engine](benchmarks.png)",
        "",
    ]
    text = "\n".join(lines)
    out = results.bench.args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    chart.draw(
        [
            (label, f.n / run.seconds, f.kb(run), statistics.mean(f.ssim[label].values()))
            for label, run in f.one.items()
        ],
        out.with_suffix(".png"),
        f"{f.n} photos, 6 renditions each, identical settings ({os.cpu_count()}-core x86 machine)",
    )
    print(text)
    print(f"written to {out} and {out.with_suffix('.png').name}")


def header(results: Results) -> list[str]:
    """Everything above the side-by-side table."""
    return [*_machine(results), *_corpus_and_job(results), *_engines(results)]


def _machine(results: Results) -> list[str]:
    """What ran it, and how busy the machine was before each section."""
    bench = results.bench
    return [
        "# imgpipe benchmarks",
        "",
        "Written by `make bench` (`bench/run.py`); nothing here is edited by hand.",
        "",
        f"Machine: {os.cpu_count()} cores (x86-64), Python {sys.version.split()[0]}, "
        f"libvips {_vips_version()} (pyvips-binary), Pillow {_pillow_version()}, "
        f"{_sharp_version()}. {bench.idle}; "
        + "".join(f"{load:.2f} before {name}; " for name, load in bench.section_loads.items())
        + f"{results.load_after:.2f} at the end (other engineers' work shares this machine; each "
        f"section first waits, up to {bench.args.section_wait:.0f} s, for the load to fall below "
        f"0.5). The whole run took {results.minutes:.1f} min.",
    ]


def _corpus_and_job(results: Results) -> list[str]:
    return [
        "",
        f"Corpus: {results.bench.corpus.line}: real photographs from Debian's "
        "gnome-backgrounds and mate-backgrounds, plus camera-like 12 MP JPEGs (4032×3024, "
        "q92, EXIF orientation 1/3/6/8, camera tags) made from them (`bench/corpus.py`; "
        "fetched at bench time, not committed).",
        "",
        "The job, identical for every engine: renditions of 1600, 800 and 256 px on the long "
        "edge (never upscaled), each as JPEG q82 (Huffman-optimised, 4:2:0, baseline) and WebP "
        "q80 (effort/method 4), EXIF orientation applied, sRGB (a colour transform only when "
        "the file carries a profile), no metadata in the outputs. Each engine decodes once and "
        "cascades (1600 → 800 → 256, Lanczos3). "
        f"Medians of {results.bench.args.repeats} interleaved runs.",
    ]


def _engines(results: Results) -> list[str]:
    """Each engine as measured, then how SSIM is computed."""
    side = results.side
    lines = [
        "",
        "- **imgpipe**: `imgpipe.engine.render_unhashed()`, what a rendering process "
        "runs: header checks and limits, one decode, the cascade, six encodes, and the "
        "record's metadata (EXIF subset, phash, blurhash, dominant colour). The original's "
        "sha256 is the caller's (the local store's ETag, hashed as the upload is written: "
        "about 2 ms for a 3 MB photo): the end-to-end section counts it. "
        + (
            "Its defaults *are* the identical settings (every RenditionSpec encoder field at "
            "the peers' values), so one row serves both."
            if side.identical_is_default
            else "Its defaults differ from the identical settings: both rows are shown."
        ),
        "- **floor**: only what these outputs need: libvips' shrink-on-load decode, the "
        "cascade, and the six encodes written as imgpipe writes them, by Pillow "
        "(`bench/engines/floor.py`).",
        "- **Pillow**: best practice (`bench/engines/pillow_engine.py`): JPEG draft mode, "
        "exif_transpose, ImageCms only when a profile is present, LANCZOS with "
        "reducing_gap=3.0, optimize=True, WebP method=4.",
    ]
    if side.sharp_missing is None:
        lines.append(
            "- **sharp** (`bench/sharp/render.mjs`): rotate(), resize(…, {fit: 'inside', "
            "withoutEnlargement: true}) from the file for 1600 px, then from raw pixels for 800 "
            "and 256, jpeg({quality: 82, mozjpeg: false}), webp({quality: 80, effort: 4}). "
            "**sharp (its defaults)** is the same with jpeg() and webp() left at sharp's "
            "defaults: JPEG quality 80 instead of 82 (its WebP defaults are already q80, "
            "effort 4)."
        )
    else:
        lines.append(f"- sharp: not measured ({side.sharp_missing}).")
    lines += [
        "",
        "SSIM: mean SSIM (Gaussian 11×11 window, σ 1.5, K1 0.01, K2 0.03) of each rendition's "
        "luma against a reference: the original decoded at full size (no shrink-on-load), "
        "rotated, resized in float with Lanczos3 to the rendition's exact size "
        "(`bench/quality.py`), averaged over the six renditions (the per-rendition figures "
        "are below).",
    ]
    return lines


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
