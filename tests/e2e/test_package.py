"""The Lambda zip, built the way `imgpipe deploy` builds it, unpacked and run under Python 3.13.

This machine is x86_64 and the functions run on arm64: arm64 native code (libvips, Pillow,
pillow-heif) cannot run here, so the zip that is *run* is built for x86_64 by the very same builder;
the arm64 zip is built too and checked to hold aarch64 code only. The 3.13 interpreter has
nothing installed (no Pillow, no pyvips): all that is imported comes from the unpacked zip, as on
Lambda, where /var/task is read-only (hence -B: no bytecode written, the zip's own is used).
boto3 is not in the zip (Lambda's runtime has it); where a module needs it, a separate folder
plays the runtime's part.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from imagegen import photo_jpeg
from imgpipe.ops.packaging import build_lambda_zip, find_python, pip_platforms

pytestmark = pytest.mark.slow

PYTHON = "3.13"
HANDLERS = (
    "imgpipe.entrypoints.lambda_worker",
    "imgpipe.entrypoints.lambda_api",
    "imgpipe.entrypoints.lambda_events",
)
EM_X86_64, EM_AARCH64 = 62, 183  # ELF e_machine

RENDER = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from imgpipe.config import Settings
from imgpipe import engine
source, out = Path(sys.argv[2]), Path(sys.argv[3])
options = Settings().render_options()
started = time.perf_counter()
result = engine.render(source.read_bytes(), options)
seconds = time.perf_counter() - started
renditions = []
for r in result.renditions:
    path = out / f"{r.name}.{r.ext}"
    path.write_bytes(r.data)
    renditions.append({"name": r.name, "format": r.format, "width": r.width,
                       "height": r.height, "bytes": len(r.data), "path": str(path)})
meta = result.metadata
print(json.dumps({"seconds": seconds, "format": meta.format, "width": meta.width,
                  "height": meta.height, "python": sys.version, "renditions": renditions}))
"""

IMPORT = """
import importlib, json, sys, time
sys.path[:0] = sys.argv[2:]
started = time.perf_counter()
for name in sys.argv[1].split(","):
    importlib.import_module(name)
print(json.dumps({"seconds": time.perf_counter() - started, "modules": len(sys.modules)}))
"""

# One HTTP API (v2) request through the API handler, as API Gateway sends it: FastAPI,
# Starlette, Mangum and pydantic at work from the zip, with the CLI's and uvicorn's
# distributions left out. GET /health reaches no AWS service (the clients are only built).
API_REQUEST = """
import json, os, sys
sys.path[:0] = sys.argv[1:]
os.environ.update({
    "IMGPIPE_BACKEND": "aws", "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
    "IMGPIPE_AWS__BUCKET": "b", "IMGPIPE_AWS__TABLE": "t",
    "IMGPIPE_AWS__QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/q",
    "IMGPIPE_AWS__DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/dlq",
})
from imgpipe.entrypoints import lambda_api
http = {"method": "GET", "path": "/health", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
        "userAgent": "test"}
event = {"version": "2.0", "routeKey": "$default", "rawPath": "/health", "rawQueryString": "",
         "headers": {"host": "api.example.com"}, "isBase64Encoded": False,
         "requestContext": {"http": http, "stage": "$default", "requestId": "r", "apiId": "a",
                            "domainName": "api.example.com", "accountId": "123456789012",
                            "time": "22/Nov/2026:00:00:00 +0000", "timeEpoch": 0}}
response = lambda_api.handler(event, None)
print(json.dumps({"status": response["statusCode"], "body": json.loads(response["body"])}))
"""


@pytest.fixture(scope="module")
def python313() -> Path:
    found = find_python(PYTHON)
    if found is None:
        message = (
            f"NO PYTHON {PYTHON} FOUND (neither python{PYTHON} on PATH nor a pyenv {PYTHON}.x): "
            "the Lambda zip was NOT run under the Lambda runtime's Python"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_lambda_zip(tmp_path_factory.mktemp("zip") / "lambda-x86_64.zip", arch="x86_64")


@pytest.fixture(scope="module")
def unpacked(built: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("task")
    with zipfile.ZipFile(built) as archive:
        archive.extractall(root)
    return root


@pytest.fixture(scope="module")
def runtime_sdk(python313: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What Lambda's python runtime adds (/var/runtime): boto3, at the version tests use."""
    target = tmp_path_factory.mktemp("runtime")
    version = importlib.metadata.version("boto3")
    platforms = [arg for tag in pip_platforms("x86_64") for arg in ("--platform", tag)]
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"),
            *("--target", str(target), "--python-version", PYTHON, "--implementation", "cp"),
            *platforms,
            "--only-binary=:all:",
            f"boto3=={version}",
        ],
        check=True,
        capture_output=True,
    )
    return target


def run313(python: Path, *args: str) -> dict[str, Any]:
    """Run under 3.13, isolated from any environment and site-packages; its JSON output."""
    done = subprocess.run(
        [str(python), "-I", "-B", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def cold_import(python: Path, modules: str, *paths: Path, bytecode: Path | None = None) -> float:
    """Seconds to import `modules` in a fresh 3.13 process. With `bytecode`, the zip's .pyc
    files are ignored (Python looks for bytecode there only), as if none had been shipped."""
    options = ["-X", f"pycache_prefix={bytecode}"] if bytecode else []
    found = run313(python, *options, "-c", IMPORT, modules, *(str(p) for p in paths))
    return float(found["seconds"])


def test_zip_is_lean_and_reproducible_in_form(built: Path, unpacked: Path) -> None:
    with zipfile.ZipFile(built) as archive:
        infos = archive.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {(i.external_attr >> 16) & 0o777 for i in infos} <= {0o644, 0o755}
    tops = {n.split("/", 1)[0] for n in names}
    # Lambda's runtime has the SDK: not shipped; jmespath stays (Powertools needs it)
    assert not {"boto3", "botocore", "s3transfer"} & tops
    # the command line and `imgpipe serve` only (packaging.LOCAL_ONLY), and what only they need
    local_only = {"typer", "rich", "uvicorn", "httptools", "uvloop", "click", "pygments", "h11"}
    local_only |= {"prometheus_client", "watchfiles"}  # /metrics and the uploads watcher
    local_only |= {"yaml", "_yaml"}  # PyYAML: imgpipe deploy reads templates
    assert not local_only & tops
    # the 32x32 analysis is pure Python: numpy is a test and bench dependency only
    assert "numpy" not in tops and "numpy.libs" not in tops
    assert "jmespath" in tops and "aws_lambda_powertools" in tops and "imgpipe" in tops
    assert not [n for n in names if "/tests/" in n or n.startswith("bin/")]
    pycs = [n for n in names if n.endswith(".pyc")]
    assert pycs and all(".cpython-313." in n for n in pycs)
    unzipped = sum(i.file_size for i in infos)
    assert unzipped < 250 * 1024 * 1024  # Lambda's limit, layers included
    print(
        f"\nzip (x86_64): {built.stat().st_size / 1e6:.1f} MB, "
        f"{unzipped / 1e6:.1f} MB unzipped, {len(names)} files"
    )


def test_renders_an_image_under_python313(python313: Path, unpacked: Path, tmp_path: Path) -> None:
    # GIVEN a 1200x900 photo (written to a file: the 3.13 interpreter has no Pillow of its own)
    source = tmp_path / "photo.jpg"
    source.write_bytes(photo_jpeg(1200, 900))
    out = tmp_path / "out"
    out.mkdir()

    # WHEN imgpipe's imaging core renders it from the unpacked zip
    result = run313(python313, "-c", RENDER, str(unpacked), str(source), str(out))

    # THEN the default renditions come out, never upscaled, in JPEG and WebP
    assert result["python"].startswith(PYTHON)
    assert (result["format"], result["width"], result["height"]) == ("jpeg", 1200, 900)
    sizes = {(r["name"], r["format"]): (r["width"], r["height"]) for r in result["renditions"]}
    assert sizes == {
        ("thumb", "jpeg"): (256, 192),
        ("thumb", "webp"): (256, 192),
        ("medium", "jpeg"): (800, 600),
        ("medium", "webp"): (800, 600),
        ("large", "jpeg"): (1200, 900),
        ("large", "webp"): (1200, 900),
    }
    # AND the files are real images of those sizes
    for rendition in result["renditions"]:
        with Image.open(rendition["path"]) as image:
            assert image.size == (rendition["width"], rendition["height"])
            assert image.format == {"jpeg": "JPEG", "webp": "WEBP"}[rendition["format"]]
    print(
        "\n"
        + "\n".join(
            f"  {r['name']}.{r['format']}: {r['width']}x{r['height']}, {r['bytes']} bytes"
            for r in result["renditions"]
        )
        + f"\n  first render under {PYTHON}: {result['seconds']:.3f} s"
    )


def test_cold_import_times(python313: Path, unpacked: Path, built: Path, tmp_path: Path) -> None:
    """Measured and printed, not asserted: machines differ."""
    core = "imgpipe.engine.pipeline,imgpipe.service"
    cold_import(python313, core, unpacked)  # the first run reads the files into the page cache
    shipped = cold_import(python313, core, unpacked)
    compiled = cold_import(python313, core, unpacked, bytecode=tmp_path / "no-bytecode")
    vips = cold_import(python313, "pyvips", unpacked)
    print(
        f"\nzip {built.stat().st_size / 1e6:.1f} MB; cold import under {PYTHON} "
        f"of imaging + service: {shipped:.3f} s with the zip's bytecode, "
        f"{compiled:.3f} s compiling from source; pyvips (first render): {vips:.3f} s"
    )


@pytest.mark.parametrize("handler", HANDLERS)
def test_handlers_import_under_python313(
    python313: Path, unpacked: Path, runtime_sdk: Path, handler: str
) -> None:
    # The handlers are written alongside this test; import-check them once they exist.
    if importlib.util.find_spec(handler) is None:
        pytest.skip(f"{handler} does not exist yet")
    cold_import(python313, handler, unpacked, runtime_sdk)  # warm the page cache
    seconds = cold_import(python313, handler, unpacked, runtime_sdk)
    print(f"\ncold import of {handler} under {PYTHON}: {seconds:.3f} s")


def test_api_handler_answers_a_request_under_python313(
    python313: Path, unpacked: Path, runtime_sdk: Path
) -> None:
    # WHEN API Gateway's event for GET /health reaches the handler in the unpacked zip
    result = run313(python313, "-c", API_REQUEST, str(unpacked), str(runtime_sdk))
    # THEN the app answers as it does locally, on the aws backend
    assert result["status"] == 200
    assert result["body"]["status"] == "ok"
    assert result["body"]["backend"] == "aws"


def elf_machine(data: bytes) -> int:
    assert data[:4] == b"\x7fELF", "not an ELF file"
    return int.from_bytes(data[18:20], "little")


def test_arm64_zip_holds_aarch64_code_only(tmp_path: Path) -> None:
    # WHEN the zip deploy uses is built (arm64)
    built = build_lambda_zip(tmp_path / "lambda-arm64.zip", arch="arm64")
    with zipfile.ZipFile(built) as archive:
        (wheel,) = [
            n
            for n in archive.namelist()
            if n.startswith("pyvips_binary-") and n.endswith(".dist-info/WHEEL")
        ]
        tags = [
            line.split(":", 1)[1].strip()
            for line in archive.read(wheel).decode().splitlines()
            if line.startswith("Tag:")
        ]
        libraries = [n for n in archive.namelist() if n.endswith(".so") or ".so." in n]
        machines = {n: elf_machine(archive.read(n)) for n in libraries}
    # THEN libvips is the aarch64 wheel, and every shared library is aarch64 code
    assert tags and all(tag.endswith("_aarch64") for tag in tags), tags
    assert "_libvips.abi3.so" in machines
    assert {n for n, m in machines.items() if m != EM_AARCH64} == set()
    print(f"\nzip (arm64): {built.stat().st_size / 1e6:.1f} MB, {len(libraries)} shared libraries")
