"""The page's Lambda part: the zip's size, the handlers' cold imports, and the compute cost
of 1M images at the side-by-side section's render time."""

from __future__ import annotations

import statistics

import lambda_cost
from sections.aws_lambda import LambdaRuns

from report.engines import Figures


def aws_lambda(runs: LambdaRuns, f: Figures) -> list[str]:
    lam = runs.report
    if lam is None:
        return ["", "## Lambda", "", f"Not measured: {runs.error}"] if runs.error else []
    render_ms = statistics.median(f.one["imgpipe"].per_image_ms)
    arm = lambda_cost.cost_per_million(render_ms, lam.worker_memory_mb, lambda_cost.ARM64_PER_GB_S)
    x86 = lambda_cost.cost_per_million(render_ms, lam.worker_memory_mb, lambda_cost.X86_PER_GB_S)
    lines = [
        "",
        "## Lambda",
        "",
        "The zip `imgpipe deploy` ships (`imgpipe.ops.packaging.build_lambda_zip`, "
        f"python3.13, arm64): **{lam.zip_mb:.1f} MB** zipped, {lam.unzipped_mb:.0f} MB "
        "unzipped. Cold import: a fresh python3.13 process importing the handler from the "
        "unpacked zip (the x86_64 build of the same zip, with bytecode), boto3 on a path of "
        "its own as the runtime provides it; median of 9, taking turns; page cache warm, so "
        "Lambda's first read of the code from its storage is not included.",
        "",
        "| handler | cold import |",
        "|---|---:|",
    ]
    for name, ms in lam.import_ms.items():
        lines.append(f"| `{name}.handler` | {ms:.0f} ms |")
    lines += [
        "| worker + what its first render imports (pyvips, Pillow) "
        f"| {lam.first_render_import_ms:.0f} ms |",
        "",
        f"Cost per 1M images: the median per-image render time on one core here "
        f"({render_ms:.0f} ms) × {lam.worker_memory_mb} MB ({lam.memory_source}; at 2048 MB "
        "Lambda gives a single-threaded render a whole vCPU) at Lambda's prices as of "
        f"{lambda_cost.PRICES_DATE} (us-east-1, first tier: arm64 "
        f"${lambda_cost.ARM64_PER_GB_S} per GB-s, x86 ${lambda_cost.X86_PER_GB_S}; "
        f"$0.20 per 1M requests, one request per SQS batch of {lambda_cost.BATCH_SIZE}): "
        f"**${arm:.2f} per 1M images on arm64** (${x86:.2f} on x86_64). S3 reads and writes, "
        "DynamoDB, SQS and the cold starts are not in it, and the timing is this machine's "
        "x86 core standing in for a Graviton one: take it as an estimate to within tens of "
        "per cent.",
    ]
    return lines
