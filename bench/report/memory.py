"""The page's memory part: each engine on the largest file alone, the peak over the ways of
starting a process, what each import adds, and where imgpipe's peak comes from."""

from __future__ import annotations

import statistics

from PIL import Image
from sections.common import Bench
from sections.engines import IMPORT_STEPS, LAYOUT_PADS, SideBySide


def memory(side: SideBySide, bench: Bench) -> list[str]:
    return [*_alone(side, bench), *_layouts(side), *_imports(side)]


def _largest(bench: Bench) -> str:
    """The largest file as the page names it: size in pixels and bytes, and its kind."""
    largest = bench.corpus.largest
    with Image.open(largest) as im:
        largest_desc = (
            f"{largest.name}, {im.width}×{im.height} ({im.width * im.height / 1e6:.1f} MP), "
            f"{largest.stat().st_size / 1e6:.1f} MB, "
            f"{'progressive' if im.info.get('progressive') else 'baseline'} JPEG"
        )
    return largest_desc


def _alone(side: SideBySide, bench: Bench) -> list[str]:
    largest_desc = _largest(bench)
    lines = [
        "",
        "## Memory: where the peak comes from",
        "",
        f"Each engine rendering only the corpus' largest file ({largest_desc}), one process, "
        f"medians of {bench.args.repeats}: every engine's peak over the whole corpus is this "
        "image's.",
        "",
        "| engine | peak RSS | after imports | the render's own |",
        "|---|---:|---:|---:|",
    ]
    for label, run in side.alone.items():
        lines.append(
            f"| {label} | {run.peak_rss_mb:.0f} MB | {run.baseline_rss_mb:.0f} MB | "
            f"{run.peak_rss_mb - run.baseline_rss_mb:.0f} MB |"
        )
    return lines


def _layouts(side: SideBySide) -> list[str]:
    """The peak over the corpus once per environment that differs in one variable's length."""
    return [
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
            for label, peaks in side.layouts.items()
        ),
    ]


def _imports(side: SideBySide) -> list[str]:
    """What each import adds in a fresh interpreter; then why imgpipe's peak is what it is."""
    imports, alone = side.imports, side.alone
    return [
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
