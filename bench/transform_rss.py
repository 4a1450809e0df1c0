"""Peak RSS of one on-request transform rendered in-process, as the API Lambda renders GET /img.

    python bench/transform_rss.py [--source 12mp.jpg] [--options rs:fill:400:300] [--format webp]

A fresh process imports what the API function imports (lambda_api, FastAPI, boto3, the engine),
reads its resident peak (ru_maxrss), runs one InProcessRenderer.transform under the default
settings' limits, and reads the peak again: the difference is what the render adds to a warm
function. Without --source, a 12 MP (4000x3000) camera-like JPEG is made first, in a child
process, so that making it does not count. docs/aws.md (On-request transforms) has the figures.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_photo(path: Path) -> None:
    code = (
        "import sys; sys.path.insert(0, sys.argv[2]); import imagegen;"
        "open(sys.argv[1], 'wb').write(imagegen.photo_jpeg(4000, 3000))"
    )
    subprocess.run([sys.executable, "-c", code, str(path), str(ROOT / "tests")], check=True)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(source: Path, options: str, fmt: str) -> str:
    # What a warm API function holds before it renders: the app, boto3, the engine.
    import boto3  # noqa: F401

    import imgpipe.engine.transform
    import imgpipe.entrypoints.api
    import imgpipe.entrypoints.lambda_api  # noqa: F401
    from imgpipe.config import Settings
    from imgpipe.core.img_url import parse_img_path
    from imgpipe.core.transform import TransformRequest
    from imgpipe.engine import InProcessRenderer

    settings = Settings()
    limits = settings.transform.limits()
    url = parse_img_path(
        f"/insecure/{options}/plain/x", keys=(), unsafe=True, presets={}, limits=limits
    )
    request = TransformRequest(
        url.transform,
        (fmt,),  # type: ignore[arg-type]
        settings.transform.encoder(),
        settings.background,
        settings.limits.render_limits(),
        limits,
    )
    data = source.read_bytes()
    before = peak_mb()
    started = time.perf_counter()
    variant = InProcessRenderer().transform(data, request)
    took = time.perf_counter() - started
    return (
        f"{source.name} {options} {fmt}: {variant.width}x{variant.height}, {len(variant.data)} B;"
        f" peak RSS {before:.0f} MB before, {peak_mb():.0f} MB after; {took * 1000:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path)
    parser.add_argument("--options", default="rs:fill:400:300")
    parser.add_argument("--format", default="webp", choices=("webp", "avif", "jpeg", "png"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        source = args.source
        if source is None:
            source = Path(folder) / "12mp.jpg"
            make_photo(source)
        print(measure(source, args.options, args.format))


if __name__ == "__main__":
    main()
