"""The page's local parts: `imgpipe process` as a user runs it, serve's worker pool as threads
or processes, and a second core for one image's encodes."""

from __future__ import annotations

import statistics

from sections.common import Corpus
from sections.pools import LocalRuns


def local(runs: LocalRuns, corpus: Corpus) -> list[str]:
    return [*_cli(runs, corpus), *_pools(runs, corpus), *_helper(runs, corpus)]


def _cli(runs: LocalRuns, corpus: Corpus) -> list[str]:
    if not runs.cli:
        return []
    n, total_mp = corpus.n, corpus.total_mp
    lines = [
        "",
        "## `imgpipe process` (interpreter start and imports included)",
        "",
        "| command | seconds | images/s | MP/s | peak RSS, whole process tree |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, run in runs.cli.items():
        lines.append(
            f"| `imgpipe process --out DIR {name}` | {run.seconds:.2f} | "
            f"{n / run.seconds:.2f} | {total_mp / run.seconds:.1f} | {run.peak_mb:.0f} MB |"
        )
    return lines


def _pools(runs: LocalRuns, corpus: Corpus) -> list[str]:
    if not runs.cli:
        return []
    n, baseline_mb = corpus.n, runs.baseline_mb
    lines = [
        "",
        "## Serve's worker pool: threads or processes (2 workers, warm)",
        "",
        "| pool | seconds | images/s | peak RSS |",
        "|---|---:|---:|---:|",
    ]
    for name, run in runs.pools.items():
        peak = run.peak_mb - baseline_mb
        lines.append(f"| 2 {name} | {run.seconds:.2f} | {n / run.seconds:.2f} | {peak:.0f} MB |")
    lines += [
        "",
        f"(Both peaks are of the benchmark script's process tree, less the script's own "
        f"{baseline_mb:.0f} MB, the corpus bytes included: the threads' is the renders "
        "in the script itself, the processes' is the two rendering processes. Until "
        "this run the processes' row kept the script's own memory in, which made "
        "processes look about 400 MB hungrier than they are.)",
    ]
    return lines


def _helper(runs: LocalRuns, corpus: Corpus) -> list[str]:
    if not runs.helper:
        return []
    n, files, largest = corpus.n, corpus.files, corpus.largest
    largest_at = files.index(largest)
    lines = [
        "",
        "## A second core for one image's encodes",
        "",
        "| encodes | one process, images/s | median ms per image | the largest file, ms "
        "| two processes, images/s | peak RSS, one process |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, by in runs.helper.items():
        alone_run, both = by[1], by[2]
        lines.append(
            f"| {label} | {n / alone_run.seconds:.2f} | "
            f"{statistics.median(alone_run.per_image_ms):.0f} | "
            f"{alone_run.per_image_ms[largest_at]:.0f} | {n / both.seconds:.2f} | "
            f"{alone_run.peak_rss_mb:.0f} MB |"
        )
    return [*lines, "", HELPER_TEXT]


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
