"""The page's on-request part: thumbor, ipx and imgpipe's `/img` route per request (cold renders
per second on one core, cached hits per second with p50 and p99, bytes and SSIM, each against
thumbor and ipx), then the issue's three goals, measured and met or not.

The part sits between two markers on the page, so `bench/run.py --only on_request` can put a
new measurement in its place (write_section) and leave the rest of the page as it was."""

from __future__ import annotations

from pathlib import Path

import shrink_on_load
from sections.on_request import (
    COLD_ROUNDS,
    HIT_SECONDS,
    HITS,
    NEXT_SIZES,
    REQUESTS,
    Figures,
    OnRequestRuns,
)

PEERS = ("thumbor", "ipx", "imgpipe", "imgpipe-fast")
# The goals: imgpipe's cold renders per core over thumbor's and ipx's, and its cached
# hits over thumbor's result storage, at no more bytes and no lower SSIM than each.
GOAL_COLD_THUMBOR = 2.0
GOAL_COLD_IPX = 1.1
GOAL_HITS_THUMBOR = 2.0
SSIM_TOLERANCE = 0.0005  # as the side-by-side goals: "no worse" within this

START = "<!-- on request: bench/run.py writes this part; --only on_request rewrites it alone -->"
END = "<!-- on request: end -->"
BEFORE = "\n## Lambda"  # where page.write puts the part, on a page written without it

COLUMNS = (
    "request | server | cold renders/s (one core) | server CPU per render | × thumbor | × ipx "
    "| cached hits/s | hit p50 | hit p99 | server CPU per hit | hits × thumbor | KB per answer "
    "| SSIM"
)


def on_request(runs: OnRequestRuns) -> list[str]:
    if not runs.files:
        return []
    lines = ["", "## On request", "", setup_text(runs), ""]
    lines += [f"| {COLUMNS} |", "|---|---|" + "---:|" * (COLUMNS.count("|") - 1)]
    for request in REQUESTS:
        lines += [row(runs, request.name, peer) for peer in PEERS]
    return [
        *lines,
        *orientation(runs),
        *nexts(runs),
        *goals(runs),
        *shrink(runs),
        "",
        *peers_text(runs),
    ]


def _vs(mine: float, theirs: Figures | None, figure: str) -> str:
    """`mine` over the same figure of `theirs`, or a dash when they were not measured."""
    return "–" if theirs is None else f"{mine / getattr(theirs, figure):.2f}×"


def row(runs: OnRequestRuns, request: str, peer: str) -> str:
    """One server's figures for one request, or why it was not measured."""
    f = runs.figures(peer, request)
    name = runs.versions.get(peer, peer)
    if f is None:
        why = runs.missing.get(peer, "no run")
        return f"| {request} | {name} | not measured: {why} |" + " |" * 10
    thumbor, ipx = runs.figures("thumbor", request), runs.figures("ipx", request)
    out = f.outputs
    flags = "".join(
        [
            f" ({out.metadata} with metadata)" if out.metadata else "",
            f" ({out.wrong_size} not the size asked)" if out.wrong_size else "",
        ]
    )
    return (
        f"| {request} | {name} | {f.cold_per_s:.1f} | {f.cold_cpu_ms:.0f} ms | "
        f"{_vs(f.cold_per_s, thumbor, 'cold_per_s')} | {_vs(f.cold_per_s, ipx, 'cold_per_s')} | "
        f"{f.hits_per_s:.0f} | {f.hit_p50_ms:.1f} ms | {f.hit_p99_ms:.1f} ms | "
        f"{f.hit_cpu_ms:.2f} ms | "
        f"{_vs(f.hits_per_s, thumbor, 'hits_per_s')} | {out.kb:.1f}{flags} | "
        f"{out.ssim:.4f} |"
    )


def orientation(runs: OnRequestRuns) -> list[str]:
    """Cold latency of the files stored upright against those stored rotated, per server."""
    rotated = sum(runs.rotated)
    if not 0 < rotated < len(runs.rotated):
        return []
    parts = []
    for request in REQUESTS:
        found = [(peer, runs.figures(peer, request.name)) for peer in PEERS]
        pairs = [
            f"{peer} {f.cold_upright_ms:.0f} vs {f.cold_rotated_ms:.0f} ms"
            for peer, f in found
            if f is not None and f.cold_upright_ms is not None and f.cold_rotated_ms is not None
        ]
        if pairs:
            parts.append(f"{request.name}: " + ", ".join(pairs))
    if not parts:
        return []
    return [
        "",
        f"Cold latency (medians), the {len(runs.rotated) - rotated} files stored upright "
        f"against the {rotated} stored rotated (EXIF orientation 3, 6 or 8, for the server "
        "to turn): " + "; ".join(parts) + ".",
    ]


def nexts(runs: OnRequestRuns) -> list[str]:
    """Renders at NEXT_SIZES of images each server rendered once: where imgpipe reads the
    images' twins."""
    rows = []
    for request in REQUESTS:
        thumbor, ipx = runs.figures("thumbor", request.name), runs.figures("ipx", request.name)
        for peer in PEERS:
            f = runs.figures(peer, request.name)
            if f is None or f.next_per_s is None or f.next_cpu_ms is None:
                continue
            rows.append(
                f"| {request.name} | {runs.versions.get(peer, peer)} | {f.next_per_s:.1f} | "
                f"{f.next_cpu_ms:.0f} ms | {_next_vs(f, thumbor)} | {_next_vs(f, ipx)} |"
            )
    if not rows:
        return []
    sizes = ", ".join(f"{w}×{h}" for w, h in NEXT_SIZES)
    return [
        "",
        f"**Next sizes.** After the hits, each server is asked for each file again as fill "
        f"{sizes} (the same format and quality), as a page's `srcset` asks for one image at "
        f"several sizes: {runs.files * len(NEXT_SIZES)} renders of images it has rendered "
        "once, one after the other, size by size. thumbor and ipx decode the original again "
        "for each. imgpipe reads the image's twin (its 1/8 decode, kept beside its results by "
        "the first render that makes that decode; engine/twin.py) for each render that needs "
        "that decode, to the same bytes: every one of these with `fast_shrink_on_load`, whose "
        "400×300 renders made the twins; by default, which leaves 1.5× for the resize and so "
        "decodes those at 1/4, the first request's first size makes them, and every later "
        "render reads them.",
        "",
        "| request | server | renders/s (one core) | server CPU per render | × thumbor | × ipx |",
        "|---|---|---:|---:|---:|---:|",
        *rows,
    ]


def _next_vs(mine: Figures, theirs: Figures | None) -> str:
    if theirs is None or not theirs.next_per_s or mine.next_per_s is None:
        return "–"
    return f"{mine.next_per_s / theirs.next_per_s:.2f}×"


def _no_worse(mine: Figures, theirs: Figures) -> bool:
    """No more bytes and no lower SSIM (within SSIM_TOLERANCE) than `theirs`."""
    return (
        mine.outputs.kb <= theirs.outputs.kb
        and mine.outputs.ssim >= theirs.outputs.ssim - SSIM_TOLERANCE
    )


def goal(
    runs: OnRequestRuns, peer: str, lead: float, hits: bool = False, me: str = "imgpipe"
) -> tuple[str, str]:
    """(measured, met) of imgpipe (`me`: as configured for that server) against `peer` on
    every request: its cold renders per second at least `lead` times theirs at no more bytes
    and no lower SSIM; or, with `hits`, its cached hits per second at least `lead` times
    theirs."""
    parts, met = [], True
    for request in REQUESTS:
        mine, theirs = runs.figures(me, request.name), runs.figures(peer, request.name)
        if mine is None or theirs is None:
            label = me if mine is None else peer
            return f"not measured: {label}: {runs.missing.get(label, 'no run')}", "–"
        if hits:
            rate = mine.hits_per_s / theirs.hits_per_s
            met = met and rate >= lead
            parts.append(
                f"{request.name}: {rate:.2f}× ({mine.hits_per_s:.0f} vs "
                f"{theirs.hits_per_s:.0f} hits/s, server CPU {mine.hit_cpu_ms:.2f} vs "
                f"{theirs.hit_cpu_ms:.2f} ms per hit, p99 {mine.hit_p99_ms:.1f} vs "
                f"{theirs.hit_p99_ms:.1f} ms)"
            )
            continue
        rate = mine.cold_per_s / theirs.cold_per_s
        met = met and rate >= lead and _no_worse(mine, theirs)
        parts.append(
            f"{request.name}: {rate:.2f}× at {mine.outputs.kb:.1f} vs {theirs.outputs.kb:.1f} "
            f"KB, SSIM {mine.outputs.ssim:.4f} vs {theirs.outputs.ssim:.4f}"
        )
    return "; ".join(parts), "yes" if met else "no"


def goals(runs: OnRequestRuns) -> list[str]:
    """The issue's three goals, each over every request."""
    same = "at no more bytes and the same SSIM"
    rows = [
        (
            f"cold renders per core ≥ {GOAL_COLD_THUMBOR:g}× thumbor's, {same}",
            *goal(runs, "thumbor", GOAL_COLD_THUMBOR),
        ),
        (
            f"cold renders per core ≥ {GOAL_COLD_IPX:g}× ipx's, {same}",
            *goal(runs, "ipx", GOAL_COLD_IPX),
        ),
        (
            "the same, with fast_shrink_on_load: ipx's decode scale and kernel",
            *goal(runs, "ipx", GOAL_COLD_IPX, me="imgpipe-fast"),
        ),
        (
            f"cached hits ≥ {GOAL_HITS_THUMBOR:g}× thumbor's result storage",
            *goal(runs, "thumbor", GOAL_HITS_THUMBOR, hits=True),
        ),
    ]
    return [
        "",
        "| goal | measured | met |",
        "|---|---|---|",
        *(f"| {text} | {measured} | {met} |" for text, measured, met in rows),
        *ceiling(runs),
    ]


def ceiling(runs: OnRequestRuns) -> list[str]:
    """The most imgpipe could lead ipx by at ipx's decode scale and kernel: ipx's CPU per
    render over imgpipe's engine's at those settings in the bench's process (no HTTP, no
    store), with libjpeg-turbo's decode alone for scale."""
    floor = runs.decode_floor_ms
    fast = shrink_on_load.CHOICES[1][0]
    engine = {r.request: r.cpu_ms for r in runs.shrink if r.choice == fast}
    leads = []
    for request in REQUESTS:
        ipx = runs.figures("ipx", request.name)
        if ipx is not None and request.name in engine:
            leads.append(
                f"{request.name}: {ipx.cold_cpu_ms:.0f} over {engine[request.name]:.0f} ms, "
                f"{ipx.cold_cpu_ms / engine[request.name]:.2f}×"
            )
    if floor is None or not leads:
        return []
    return [
        "",
        "At ipx's settings (its decode scale, Lanczos3), the CPU of imgpipe's engine alone "
        "(decode, resize, encode; no HTTP, no store: the shrink-on-load table below) bounds "
        "any lead over ipx's whole server: "
        + "; ".join(leads)
        + f". Of that, libjpeg-turbo's decode alone takes {floor:.0f} ms per file, and sharp "
        "decodes with the same library.",
    ]


def shrink(runs: OnRequestRuns) -> list[str]:
    """imgpipe's JPEG decode scale against SSIM, bytes and CPU: what thumbor's SSIM costs."""
    if not runs.shrink:
        return []
    ours = {r.request: r for r in runs.shrink if r.choice == runs.shrink[0].choice}
    lines = [
        "",
        "**Shrink on load.** imgpipe decodes a JPEG at a DCT scale that leaves at least 1.5× "
        "for its resize, with Magic Kernel Sharp 2021 (libvips' `mks2021`, which sharpens as "
        "it reduces); `transform.fast_shrink_on_load` takes the largest scale that still covers "
        "the result and Lanczos3, as ipx's sharp does; libvips' thumbnail (and Pillow's "
        "`reducing_gap=2`) leaves at least 2× for Lanczos3. Each through imgpipe's engine in "
        "the bench's process (`bench/shrink_on_load.py`), taking turns per file; thumbor's "
        "answers for comparison:",
        "",
        "| request | JPEG decoded at | KB | SSIM | CPU per render | × imgpipe's CPU |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in runs.shrink:
        cpu = row.cpu_ms / ours[row.request].cpu_ms
        lines.append(
            f"| {row.request} | {row.choice} | {row.kb:.1f} | {row.ssim:.4f} | "
            f"{row.cpu_ms:.0f} ms | {cpu:.2f}× |"
        )
    for request in REQUESTS:
        theirs = runs.figures("thumbor", request.name)
        if theirs is not None:
            lines.append(
                f"| {request.name} | thumbor (its answers above) | {theirs.outputs.kb:.1f} | "
                f"{theirs.outputs.ssim:.4f} | {theirs.cold_cpu_ms:.0f} ms (server) | – |"
            )
    return lines


def setup_text(runs: OnRequestRuns) -> str:
    files = runs.files
    return (
        f"Each server on loopback, pinned to one core (`taskset -c 0`), the client on the "
        f"other; requests one after the other on one keep-alive connection. The {files} "
        "camera-like 12 MP JPEGs of the corpus (4032×3024, EXIF orientations 1, 6, 3 and 8), "
        "each asked for as fill 400×300 (cropped at the centre; these photos are 4:3 once "
        "upright, so nothing is cut), never upscaled, EXIF orientation applied, no metadata "
        "kept. **Cold**: each request new to every cache: the file under a new name (a "
        "hard link, for the servers that read a folder), or uploaded again as an image of its "
        "own (imgpipe: a new cachebuster is a new URL of the same image, whose twin may serve "
        f"it); {files * COLD_ROUNDS} renders per pass after one untimed warm-up; "
        "renders/s is requests over wall time, the server's CPU per render from /proc. "
        f"**Cached**: the {files} URLs rendered once, then asked for again in turn, "
        f"{HITS} times or for {HIT_SECONDS:g} s; p50 and p99 of those. KB and SSIM: the "
        "answers of the first run, SSIM of the luma against the original decoded at full "
        "size, upright, cut to 4:3 at the centre and resized in float with Lanczos3 "
        "(`bench/quality.py`). A fresh server (an empty cache) per run, taking turns; "
        "medians of the runs."
    )


def peers_text(runs: OnRequestRuns) -> list[str]:
    return [
        "- **thumbor** (`bench/thumbor/requirements.txt`, a venv of its own under "
        "`bench/.peers/`): its tornado server and PIL engine, originals from a folder "
        "(`file_loader`, no storage of originals), result storage in files "
        "(`file_storage`, kept for unsafe URLs too, never expiring), `RESPECT_ORIENTATION` "
        "on, `PROGRESSIVE_JPEG` off; asked `/unsafe/400x300/filters:format(webp):"
        "quality(80):no_upscale()/…`. It turns the image (EXIF orientation) and cuts it to "
        "the fill's aspect before it resizes, and it is the resize that asks Pillow for a "
        "reduced JPEG decode (draft mode): a photo stored rotated, or one the fill must cut, "
        "is decoded at full size.",
        "- **ipx** (`bench/ipx/package-lock.json`): its own node server (createIPXNodeServer) "
        "over its file storage, sharp's `autoOrient` on and `jpegProgressive` off "
        "(`bench/ipx/server.mjs`); asked `/s_400x300,f_webp,q_80/…`. ipx keeps no rendered "
        "results as it ships: the same URL again is rendered again (its caching is HTTP's: "
        "`Cache-Control: max-age=60`, Last-Modified and ETag, for a browser or a CDN in "
        "front), so its cached hits are renders.",
        "- **imgpipe**: `imgpipe serve`, the files uploaded with `POST /images` first "
        "(untimed, processed before the passes), asked `/img/insecure/rs:fill:400:300:0/"
        "q:80/plain/{imageId}@webp` (imgproxy's grammar), its derived cache as it ships; "
        "**imgpipe-fast** the same with `IMGPIPE_TRANSFORM__FAST_SHRINK_ON_LOAD=true`, "
        "which decodes and resizes as ipx's sharp does.",
    ]


def marked(lines: list[str]) -> list[str]:
    """The part between its markers, as page.write puts it; nothing for a skipped section."""
    return ["", START, *lines, END] if lines else []


def replaced(page: str, lines: list[str]) -> str:
    """`page` with its on-request part (between the markers) now `lines`; on a page without
    the markers, the part goes where page.write puts it (before the Lambda part, or at the
    end). Everything outside the part is kept as it was."""
    block = "\n".join(marked(lines)[1:])
    if START in page and END in page:
        head, rest = page.split(START, 1)
        tail = rest.split(END, 1)[1]
        return head.rstrip("\n") + "\n\n" + block + tail
    at = page.find(BEFORE)
    if at < 0:
        return page.rstrip("\n") + "\n\n" + block + "\n"
    return page[:at].rstrip("\n") + "\n\n" + block + "\n" + page[at:]


def write_section(out: Path, lines: list[str]) -> bool:
    """Put `lines` in place of the on-request part of the page at `out`; False (nothing
    written) where there is no page yet or the section was skipped."""
    if not lines or not out.exists():
        return False
    out.write_text(replaced(out.read_text(encoding="utf-8"), lines), encoding="utf-8")
    return True
