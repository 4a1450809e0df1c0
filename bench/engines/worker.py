"""One benchmark process: renders a list of files with one engine and reports as JSON.

    python bench/engines/worker.py ENGINE LISTFILE [--out DIR]

ENGINE is pillow, floor (its knobs as JSON in $BENCH_KNOBS), imgpipe, imgpipe-identical or
imgpipe-one-thread (imgpipe with every encode in the render's own thread).
The worker imports its engine, renders the first file once untimed (warm-up), prints "ready",
waits for a line on stdin ("go"), renders every file in LISTFILE (one path a line), then prints
one JSON line: seconds, per-image milliseconds, peak RSS (VmHWM), the RSS once the engine is
imported, output bytes per rendition, the output sizes, and the CPU milliseconds each image
spent in Pillow's JPEG and WebP encoders (every Python engine here writes its files through
Image.save). With --out, the outputs are also written to DIR/<file stem>/<name>.<ext> (after
the timing).
bench/sharp/render.mjs speaks the same protocol.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engines.common import Output


def load(engine: str) -> Callable[[bytes], list[Output]]:
    if engine == "pillow":
        from engines import pillow_engine

        return pillow_engine.render
    if engine == "floor":
        import json
        import os

        from engines import floor

        knobs = json.loads(os.environ.get("BENCH_KNOBS", "{}"))
        return floor.make(floor.Knobs(**knobs))
    if engine in ("imgpipe", "imgpipe-identical", "imgpipe-one-thread"):
        from engines import imgpipe_engine

        if engine == "imgpipe-one-thread":  # no helper thread for the encodes, ever
            from imgpipe.engine import encode

            encode.ENCODE_HELPER = False
        return imgpipe_engine.make()  # type: ignore[no-any-return]
    raise SystemExit(f"unknown engine {engine!r}")


def clock_encodes() -> list[float]:
    """Count the CPU time of every Image.save into the returned one-item list (seconds). The
    encodes run in the calling thread: libwebp and libjpeg-turbo start no threads here, and
    imgpipe's helper thread never starts on one pinned core (engine.cpu.usable_cores)."""
    from PIL import Image

    spent = [0.0]
    save = Image.Image.save

    def timed_save(self: Image.Image, *args: Any, **kwargs: Any) -> None:
        started = time.thread_time()
        try:
            save(self, *args, **kwargs)
        finally:
            spent[0] += time.thread_time() - started

    Image.Image.save = timed_save  # type: ignore[method-assign]
    return spent


def status_kb(field: str) -> int:
    """A memory figure of this process from /proc/self/status. VmHWM, not ru_maxrss: Linux
    carries ru_maxrss across exec, so a child of a big parent would report the parent's."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("engine")
    parser.add_argument("listfile", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    files = [Path(line) for line in args.listfile.read_text().splitlines() if line]
    render = load(args.engine)
    encoding = clock_encodes()
    baseline_kb = status_kb("VmRSS")
    render(files[0].read_bytes())
    print("ready", flush=True)
    sys.stdin.readline()
    per_image: list[float] = []
    encode_ms: list[float] = []
    totals: dict[str, int] = {}
    sizes: dict[str, dict[str, list[int]]] = {}
    kept: dict[str, list[Output]] = {}
    started = time.perf_counter()
    for path in files:
        t0, encoded = time.perf_counter(), encoding[0]
        outputs = render(path.read_bytes())
        per_image.append((time.perf_counter() - t0) * 1000)
        encode_ms.append((encoding[0] - encoded) * 1000)
        for out in outputs:
            key = f"{out.name}.{out.ext}"
            totals[key] = totals.get(key, 0) + len(out.data)
            sizes.setdefault(path.stem, {})[out.name] = [out.width, out.height]
        if args.out:
            kept[path.stem] = outputs  # written after the clock stops
    seconds = time.perf_counter() - started
    for stem, outputs in kept.items():
        for out in outputs:
            dest = args.out / stem / f"{out.name}.{out.ext}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(out.data)
    report = {
        "engine": args.engine,
        "seconds": seconds,
        "per_image_ms": per_image,
        "encode_ms": encode_ms,
        "peak_rss_kb": status_kb("VmHWM"),
        "baseline_rss_kb": baseline_kb,
        "bytes": totals,
        "sizes": sizes,
    }
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
