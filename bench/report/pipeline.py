"""The page's pipeline parts: the local end-to-end runs (where the overhead over the raw engine
goes, the largest file first, sustained) and the API under load."""

from __future__ import annotations

import statistics

from engine_runs import EngineRun
from sections.end_to_end import SUSTAINED_ROUNDS, EndToEndRuns

import e2e as e2e_bench
from report.engines import Figures


def end_to_end(e2e: EndToEndRuns, f: Figures) -> list[str]:
    if not e2e.end_to_end:
        return []
    # The run of median speed: every figure below is that one run's.
    runs = e2e.end_to_end
    best = min(
        runs, key=lambda r: abs(r.per_second - statistics.median(x.per_second for x in runs))
    )
    return [
        *_table(e2e, f, best),
        *_where(f, best),
        *_reordered(e2e, f, best),
        *_sustained(e2e, f),
        "",
        E2E_TEXT,
    ]


def _table(e2e: EndToEndRuns, f: Figures, best: e2e_bench.EndToEnd) -> list[str]:
    """The run of median speed: seconds, images/s, latency, and the overhead's figure."""
    n, two, end_to_end = f.n, f.side.two, e2e.end_to_end
    overhead = e2e.overhead(two["imgpipe"], n)
    return [
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


def _where(f: Figures, best: e2e_bench.EndToEnd) -> list[str]:
    """Where the overhead goes, in core-ms per image against the raw engine's run."""
    n, raw = f.n, f.side.two["imgpipe"]
    raw_ms = statistics.median(raw.per_image_ms)
    in_worker = statistics.median(best.render_ms) / raw_ms - 1
    # Both runs in core-ms per image (2 cores x wall time / images): the ratio of the two
    # is the throughput ratio, so the rows below add up to the overhead exactly.
    raw_core = 2 * raw.seconds * 1000 / n
    raw_cpu = statistics.mean(raw.per_image_ms)
    e2e_core = 2 * best.seconds * 1000 / n
    raw_idle = raw_core - raw_cpu
    rows = _where_rows(best, n, raw_cpu, raw_core)
    lines = [
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
        "| where | core-ms per image, end to end | more than the raw engine | share of the raw |",
        "|---|---:|---:|---:|",
    ]
    for what, value, extra in rows:
        lines.append(f"| {what} | {value:.0f} | {extra:+.0f} | {extra / raw_core * 100:+.0f}% |")
    lines += [
        f"| total: 2 cores × {best.seconds:.2f} s / {n} images | {e2e_core:.0f} | "
        f"{e2e_core - raw_core:+.0f} | {(e2e_core / raw_core - 1) * 100:+.0f}% |",
    ]
    return lines


def _where_rows(
    best: e2e_bench.EndToEnd, n: int, raw_cpu: float, raw_core: float
) -> list[tuple[str, float, float]]:
    """(where, core-ms per image end to end, more than the raw engine): they add up to the
    whole run's core-ms, and the differences to the overhead."""
    e2e_core = 2 * best.seconds * 1000 / n
    renderers = best.renderers_cpu_s * 1000 / n
    server_ms = best.server_cpu_s * 1000 / n
    client_ms = best.client_cpu_s * 1000 / n
    idle = e2e_core - renderers - server_ms - client_ms
    tail = best.tail_s * 1000 / n  # one core idle while the other renders the last image
    raw_idle = raw_core - raw_cpu
    return [
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


def _reordered(e2e: EndToEndRuns, f: Figures, best: e2e_bench.EndToEnd) -> list[str]:
    """The same uploads with the largest file first: how much of the tail is the order."""
    reordered, n, two = e2e.reordered, f.n, f.side.two
    if not reordered:
        return []
    rate = statistics.median(r.per_second for r in reordered)
    return [
        "",
        f"The same {n} uploads with the largest file sent first and the rest in name "
        f"order (a fresh server each time, taking turns with the runs above; median of "
        f"{len(reordered)}): {rate:.2f} images/s, overhead "
        f"{(n / two['imgpipe'].seconds / rate - 1) * 100:.0f}%; the last image to finish "
        f"rendered alone for {statistics.median(r.tail_s for r in reordered):.2f} s "
        f"(name order: {best.tail_s:.2f} s). The goal's row keeps the name order.",
    ]


def _sustained(e2e: EndToEndRuns, f: Figures) -> list[str]:
    figures = e2e.sustained_figures(f.n)
    if figures is None:
        return []
    sustained, n = e2e.sustained, f.n
    sustained_rate, sustained_raw, held = figures
    rounds_n = n * SUSTAINED_ROUNDS
    return [
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


def _per_image(runs: list[tuple[e2e_bench.EndToEnd, EngineRun]], field: str) -> float:
    """The median over `runs` of an end-to-end figure in seconds, as ms per image."""
    return float(statistics.median(getattr(e, field) / e.images * 1000 for e, _ in runs))


def api(e2e: EndToEndRuns, n: int) -> list[str]:
    """wrk's figures per route; then why the rest are missing, if wrk failed."""
    lines: list[str] = []
    if e2e.loads:
        lines += _loads(e2e, n)
    if e2e.api_error:
        lines += ["", "## API under load (loopback)", "", f"Not measured: {e2e.api_error}"]
    return lines


def _loads(e2e: EndToEndRuns, n: int) -> list[str]:
    lines = [
        "",
        "## API under load (loopback)",
        "",
        "wrk, 1 thread, 8 connections, 10 s per route, against the server above after its "
        f"{n} images were processed (rate limit off for this server; wrk shares the 2 cores).",
        "",
        "| route | requests/s | p50 | p99 | non-2xx |",
        "|---|---:|---:|---:|---:|",
    ]
    for load in e2e.loads:
        route = "GET /images/{id}" if load.route.startswith("/images/") else f"GET {load.route}"
        lines.append(
            f"| `{route}` | {load.requests_per_s:.0f} | {load.p50_ms:.1f} ms | "
            f"{load.p99_ms:.1f} ms | {load.non_2xx} |"
        )
    return lines


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
