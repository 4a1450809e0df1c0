"""The page's tuning parts: each optimisation one at a time on the floor pipeline, and
libwebp's own settings searched; each with what imgpipe makes of it."""

from __future__ import annotations

import webp_search
from sections.common import Bench
from sections.levers import LeverResult


def levers(lever_rows: list[LeverResult], bench: Bench) -> list[str]:
    if not lever_rows:
        return []
    files, args = bench.corpus.files, bench.args
    b = lever_rows[0]
    lines = [
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
    return [*lines, "", LEVERS_TEXT]


def webp(webp_rows: list[webp_search.Row], bench: Bench) -> list[str]:
    if not webp_rows:
        return []
    files = bench.corpus.files
    faster_and_fit = [
        r.what
        for r in webp_rows[1:]
        if r.ms_per_image < 0.9 * webp_rows[0].ms_per_image and r.meets(webp_rows[0])
    ]
    return [
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


WEBP_TEXT = """Pillow, libvips and sharp expose only WebP's quality and method (effort); libwebp
has more knobs. `bench/webp_search.py` sets them directly through libwebp's C API (the build in
Pillow's wheel, the one that writes imgpipe's WebP renditions; its default configuration is
checked to write exactly Pillow's bytes), one change per row from the defaults every engine
uses (quality 80, method 4), on the same pixels ({n} photos, the floor's three sizes). Time is
the CPU time of the three WebP encodes per image; bytes and SSIM are per size, against the
full-resolution reference. "No larger, no worse" is the goals table's rule (SSIM within
0.0005) at every size."""
