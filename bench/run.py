"""`make bench`: imgpipe side by side with Pillow, sharp and the floor on real photographs,
each optimisation with its measured effect, the local pipeline end to end, the API under load,
and Lambda; written to docs/benchmarks.md and docs/benchmarks.png.

    python bench/run.py [--repeats 3] [--wait-idle 300] [--out docs/benchmarks.md]
                        [--skip lambda,api,...]
    python bench/run.py --only on_request   # that section alone: its part of the page to
                                            # stdout and in place in docs/benchmarks.md (or
                                            # --out), the rest of the page unchanged

Runs being compared are interleaved and repeated, and medians are reported, because these
machines are noisy; every ratio comes from numbers measured in the same run. Each engine runs
in processes of its own (bench/engines/worker.py, bench/sharp/render.mjs): "one core" is one
process pinned with taskset -c 0, "two processes" is two unpinned processes splitting the
corpus. All get the same environment: VIPS_CONCURRENCY=1, MALLOC_ARENA_MAX=2.

    bench/sections/   one module per section, measured in this order by main(): engines (side
                      by side), levers, webp (libwebp's settings), pools (imgpipe process and
                      serve's pool), end_to_end (and the API), on_request (thumbor, ipx and
                      imgpipe's /img route), aws_lambda
    bench/report/     the page written from their results, one module per part of it
    engine_runs.py, procs.py   the engines' processes, and measuring a process tree
"""

from __future__ import annotations

import argparse
import compileall
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from report import on_request as on_request_part
from report import page
from sections import aws_lambda, end_to_end, engines, levers, on_request, pools, webp
from sections.common import start
from sections.results import Results

ROOT = Path(__file__).resolve().parent.parent
# As `imgpipe` itself does (cli.main): fewer glibc arenas, less RSS with libvips threads.
os.environ.setdefault("MALLOC_ARENA_MAX", "2")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--wait-idle", type=float, default=120, help="seconds, at most")
    parser.add_argument(
        "--section-wait", type=float, default=45, help="seconds, at most, before each later section"
    )
    parser.add_argument(
        "--skip", default="", help="comma-separated: cli,levers,webp,e2e,api,on_request,lambda"
    )
    parser.add_argument("--only", choices=["on_request"], help="run this section alone")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    return parser.parse_args()


def main() -> None:
    """The sections in order, each waiting for a quiet machine first; then the page."""
    args = parse_args()
    bench_started = time.perf_counter()
    # imgpipe's modules as bytecode first, as `make serve` has them (the Makefile's
    # `bytecode`): compiled from source, each engine process held 0.9 MB more after imports.
    compileall.compile_dir(ROOT / "src" / "imgpipe", quiet=1)
    bench = start(args)
    if args.only == "on_request":
        bench.args.section_wait = 0  # start() waited already
        lines = on_request_part.on_request(on_request.measure(bench))
        print("\n".join(lines))
        if on_request_part.write_section(args.out, lines):
            print(f"its part of {args.out} replaced")
        return
    side = engines.measure(bench)
    lever_rows = levers.measure(bench)
    webp_rows = webp.measure(bench)
    local = pools.measure(bench)
    e2e = end_to_end.measure(bench, raw_engine=side.engines[0])  # imgpipe
    on_request_runs = on_request.measure(bench)
    aws = aws_lambda.measure(bench)
    load_after = os.getloadavg()[0]
    minutes = (time.perf_counter() - bench_started) / 60
    page.write(
        Results(
            bench,
            side,
            lever_rows,
            webp_rows,
            local,
            e2e,
            on_request_runs,
            aws,
            load_after,
            minutes,
        )
    )


if __name__ == "__main__":
    main()
