"""Lambda: the deployment zip's size, cold import time of the handlers under python3.13, and
the cost per 1M images from a measured per-image duration x memory at arm64 prices.

    python bench/lambda_cost.py [--render-ms 350]

The zip is built by imgpipe.ops.packaging.build_lambda_zip, as `imgpipe deploy` builds it: once
for arm64 (what deploys; its size is reported) and once for x86_64 (this machine's
architecture), which is unpacked and imported by a fresh python3.13 each time, with boto3 on a
path of its own as Lambda's runtime provides it. x86 timings stand in for arm64 ones.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

# The prices live in one file (imgpipe.ops.prices, dated, with where they come from) and the
# template's figures in imgpipe.ops.cost (a unit test checks them against infra/template.yaml);
# bench/report/aws_lambda.py reads them from here under these names.
from imgpipe.ops import prices
from imgpipe.ops.cost import BATCH_SIZE, WORKER_MEMORY_MB

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(__file__).resolve().parent / ".lambda"

PRICES_DATE = prices.PRICES_CHECKED
ARM64_PER_GB_S = prices.LAMBDA_ARM64_PER_GB_S
X86_PER_GB_S = prices.LAMBDA_X86_PER_GB_S
PER_REQUEST = prices.LAMBDA_PER_MILLION_REQUESTS / 1_000_000
# Lambda gives 1 vCPU at 1769 MB: at 2048 MB a single-threaded render gets a whole core.
FULL_CORE_MB = 1769

HANDLERS = ("imgpipe.entrypoints.lambda_worker", "imgpipe.entrypoints.lambda_api")
# What the worker's first render imports: pyvips (libvips) set up, Pillow (EXIF, and the JPEG
# and WebP encoders).
FIRST_RENDER = (
    "import imgpipe.engine.pipeline as m; m.configure_vips(); import PIL.Image; "
    "import PIL.JpegImagePlugin; import PIL.WebPImagePlugin"
)


@dataclass
class LambdaReport:
    zip_mb: float
    unzipped_mb: float
    import_ms: dict[str, float]
    first_render_import_ms: float
    worker_memory_mb: int
    memory_source: str


def _template_memory() -> tuple[int, str]:
    template = ROOT / "infra" / "template.yaml"
    if template.is_file():
        text = template.read_text()
        marker = text.find("WorkerMemorySize:")
        if marker >= 0:
            for line in text[marker:].splitlines()[1:8]:
                if line.strip().startswith("Default:"):
                    return int(line.split(":", 1)[1]), "infra/template.yaml (WorkerMemorySize)"
    return WORKER_MEMORY_MB, "assumed (no infra/template.yaml)"


def _build(arch: str, out: Path) -> Path:
    from imgpipe.ops.packaging import build_lambda_zip

    return build_lambda_zip(out, arch=arch)  # type: ignore[arg-type]


def _runtime_sdk(python: Path, target: Path) -> None:
    """boto3 for python3.13 in a folder of its own: Lambda's runtime has it, the zip not."""
    if (target / "boto3").is_dir():
        return
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--target", str(target), "boto3"],
        check=True,
        capture_output=True,
    )


def _import_ms(
    python: Path, paths: list[Path], statements: dict[str, str], repeats: int
) -> dict[str, float]:
    """Median wall time of each statement in a fresh interpreter; the statements take turns,
    so that a busy moment of the machine does not fall on one of them only."""
    env = {"PYTHONPATH": ":".join(map(str, paths)), "PYTHONDONTWRITEBYTECODE": "1"}
    times: dict[str, list[float]] = {name: [] for name in statements}
    for _ in range(repeats):
        for name, statement in statements.items():
            code = (
                "import time; t = time.perf_counter(); "
                f"{statement}; print((time.perf_counter() - t) * 1000)"
            )
            done = subprocess.run(
                [str(python), "-c", code], capture_output=True, text=True, env=env, check=True
            )
            times[name].append(float(done.stdout.strip().splitlines()[-1]))
    return {name: statistics.median(values) for name, values in times.items()}


def measure(repeats: int = 9) -> LambdaReport:
    from imgpipe.ops.packaging import find_python

    python = find_python("3.13")
    if python is None:
        raise RuntimeError("no python3.13 found (pyenv or PATH)")
    CACHE.mkdir(exist_ok=True)
    arm = _build("arm64", CACHE / "imgpipe-arm64.zip")
    x86 = _build("x86_64", CACHE / "imgpipe-x86_64.zip")
    with zipfile.ZipFile(arm) as archive:
        unzipped = sum(info.file_size for info in archive.infolist())
    sdk = CACHE / "runtime-sdk"
    _runtime_sdk(python, sdk)
    with tempfile.TemporaryDirectory(prefix="imgpipe-lambda-") as tmp:
        task = Path(tmp) / "task"
        with zipfile.ZipFile(x86) as archive:
            archive.extractall(task)
        paths = [task, sdk]
        statements = {name: f"import {name}" for name in HANDLERS}
        statements["first"] = f"import {HANDLERS[0]}; {FIRST_RENDER}"
        measured = _import_ms(python, paths, statements, repeats)
        first = measured.pop("first")
        import_ms = measured
    memory, source = _template_memory()
    return LambdaReport(arm.stat().st_size / 1e6, unzipped / 1e6, import_ms, first, memory, source)


def cost_per_million(render_ms: float, memory_mb: int, per_gb_s: float) -> float:
    """Compute cost of 1M images at `render_ms` each, plus one request per batch."""
    gb_s = render_ms / 1000 * memory_mb / 1024
    return 1_000_000 * gb_s * per_gb_s + 1_000_000 / BATCH_SIZE * PER_REQUEST


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--render-ms", type=float, default=350.0)
    args = parser.parse_args()
    report = measure()
    print(report)
    print(
        f"arm64 ${cost_per_million(args.render_ms, report.worker_memory_mb, ARM64_PER_GB_S):.2f}"
        f" per 1M images at {args.render_ms:.0f} ms"
    )
    sys.exit(0)
