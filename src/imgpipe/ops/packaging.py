"""The Lambda deployment zip: imgpipe and its dependencies for python3.13 on arm64 (or x86_64).

    build_lambda_zip(out)
      build imgpipe's own wheel (pure Python) from a copy of the project
      pip install it with the [aws] extra into a folder, choosing wheels for the *target*
        (--platform manylinux_2_x_<machine> --implementation cp --python-version 3.13
        --only-binary=:all:): no Docker, no compiler, whatever machine builds it
      drop what Lambda's python runtime already has: boto3, botocore, s3transfer and whatever
        only they need (the others' dependencies stay, e.g. jmespath for Powertools), and
        what only the local commands import (site_trim)
      strip what is never imported at run time: tests/, __pycache__/, bin/ (site_trim)
      compile bytecode for the target Python when an interpreter of that version is at hand
        (/var/task is read-only: without .pyc files every cold start compiles every module)
      write a deterministic zip: sorted entries, fixed timestamps and permissions

boto3 is left out on purpose. The runtime's copy is what AWS keeps patched, and leaving it out
saves ~25 MB unzipped. The price: imgpipe must not call any API newer than the runtime's botocore
(its S3, SQS and DynamoDB calls are years old; the dev environment runs an older boto3 than
PyPI's newest, as checkov pins it). Pass `include_sdk=True` to ship a pinned copy instead.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Literal

from imgpipe.ops.site_trim import REQUIREMENT_NAME, only_through, remove_distribution, strip

Arch = Literal["arm64", "x86_64"]

MACHINES: dict[str, str] = {"arm64": "aarch64", "x86_64": "x86_64"}
# The python3.13 runtime runs on Amazon Linux 2023, glibc 2.34: any manylinux wheel up to 2_34.
# pip does not widen `--platform manylinux_2_x` to older glibc versions by itself, so list them.
GLIBC_MINORS = range(34, 16, -1)
# In Lambda's python runtime (/var/runtime): left out of the zip unless include_sdk=True.
RUNTIME_SDK = ("boto3", "botocore", "s3transfer")
# What only the command line and `imgpipe serve` import: the CLI (Typer, Rich), uvicorn
# with its speed-ups (Lambda's API runs under Mangum), the local /metrics (Prometheus; on AWS
# metrics are EMF), the uploads folder watcher and PyYAML (deploy reads templates). Left out
# of the zip together with what nothing else needs (click, Pygments, h11...);
# tests/e2e/test_package.py imports both handlers, serves API Gateway events and renders from
# the unpacked zip under python3.13.
LOCAL_ONLY = (
    "typer",
    "rich",
    "uvicorn",
    "httptools",
    "uvloop",
    "prometheus-client",
    "watchfiles",
    "pyyaml",
)
# Lambda's limit for a function's unzipped code (layers included).
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
LAMBDA_TASK_ROOT = "/var/task"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
PROJECT_FILES = ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "setup.py", "MANIFEST.in")
# Dependencies published only as source (pyvips) are built here, as long as they are pure.
MAX_SOURCE_BUILDS = 5

_NO_WHEEL = re.compile(r"No matching distribution found for (\S+)")


class PackagingError(RuntimeError):
    """The zip could not be built (pip failed, or the result is over Lambda's limit)."""


def build_lambda_zip(
    out: Path,
    *,
    arch: Arch = "arm64",
    python_version: str = "3.13",
    project_dir: Path | None = None,
    include_sdk: bool = False,
    compile_bytecode: bool = True,
) -> Path:
    """Build the Lambda zip at `out` and return its path; prints its size."""
    if arch not in MACHINES:
        raise ValueError(f"arch must be one of {sorted(MACHINES)}, not {arch!r}")
    project = (project_dir or _default_project_dir()).resolve()
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="imgpipe-package-") as tmp:
        work = Path(tmp)
        wheel = _build_project_wheel(project, work / "wheel")
        site = work / "site"
        _pip_install_for_target(f"{wheel}[aws]", site, arch=arch, python_version=python_version)
        unused = only_through(site, "imgpipe", LOCAL_ONLY)
        if not include_sdk:
            unused |= only_through(site, "imgpipe", RUNTIME_SDK)
        for name in sorted(unused):
            remove_distribution(site, name)
        strip(site)
        if compile_bytecode:
            _compile(site, python_version)
        unzipped = sum(p.stat().st_size for p in _files(site))
        if unzipped > MAX_UNZIPPED_BYTES:
            raise PackagingError(
                f"{unzipped / 1e6:.0f} MB unzipped: over Lambda's {MAX_UNZIPPED_BYTES / 1e6:.0f} MB"
            )
        _write_zip(site, out)
    print(
        f"{out}: {out.stat().st_size / 1e6:.1f} MB zipped, {unzipped / 1e6:.1f} MB unzipped "
        f"(python{python_version}, {arch})"
    )
    return out


def pip_platforms(arch: Arch) -> list[str]:
    """The manylinux platform tags a wheel for the Lambda runtime on `arch` may carry."""
    machine = MACHINES[arch]
    return [f"manylinux_2_{minor}_{machine}" for minor in GLIBC_MINORS] + [
        f"manylinux2014_{machine}"
    ]


def find_python(version: str) -> Path | None:
    """An interpreter of exactly `version` (e.g. "3.13"): on PATH, or installed by pyenv."""
    candidates: list[Path] = []
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(Path(on_path))
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    installed = sorted(
        (pyenv_root / "versions").glob(f"{version}.*/bin/python{version}"),
        key=lambda p: _version_key(p.parent.parent.name),
        reverse=True,
    )
    candidates.extend(installed)
    for candidate in candidates:
        if _python_version(candidate) == version:
            return candidate
    return None


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else -1 for part in name.split("."))


def _python_version(python: Path) -> str | None:
    try:
        done = subprocess.run(
            [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _default_project_dir() -> Path:
    """The source checkout this module lives in (src/imgpipe/ops/packaging.py -> the project)."""
    project = Path(__file__).resolve().parents[3]
    if not (project / "pyproject.toml").is_file():
        raise PackagingError(f"no pyproject.toml in {project}: pass project_dir")
    return project


def _run(args: list[str], what: str) -> None:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-30:])
        raise PackagingError(f"{what} failed (exit {done.returncode}):\n{tail}")


def _pip() -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]


def _build_project_wheel(project: Path, dest: Path) -> Path:
    """imgpipe's own wheel, built from a copy so that nothing is written into the checkout."""
    source = dest.parent / "source"
    source.mkdir(parents=True)
    for name in PROJECT_FILES:
        if (project / name).is_file():
            shutil.copy2(project / name, source / name)
    shutil.copytree(
        project / "src",
        source / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
    )
    _run([*_pip(), "wheel", "--no-deps", "--wheel-dir", str(dest), str(source)], "building imgpipe")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise PackagingError(f"expected one wheel of imgpipe, found {[w.name for w in wheels]}")
    return wheels[0]


def _pip_install_for_target(
    requirement: str, target: Path, *, arch: Arch, python_version: str
) -> None:
    """pip install for the target platform; a dependency published only as a source
    distribution (pyvips is) is built here into a wheel first, and must come out pure Python."""
    wheelhouse = target.parent / "wheelhouse"
    wheelhouse.mkdir(parents=True, exist_ok=True)
    platforms = [arg for tag in pip_platforms(arch) for arg in ("--platform", tag)]
    built: set[str] = set()
    while True:
        done = subprocess.run(
            [
                *_pip(),
                "install",
                "--target",
                str(target),
                "--find-links",
                str(wheelhouse),
                *platforms,
                "--implementation",
                "cp",
                "--python-version",
                python_version,
                "--only-binary=:all:",
                "--no-compile",
                requirement,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0:
            return
        missing = _NO_WHEEL.search(done.stderr)
        if missing is None or missing.group(1) in built or len(built) >= MAX_SOURCE_BUILDS:
            tail = "\n".join(done.stderr.strip().splitlines()[-30:])
            raise PackagingError(
                f"pip install for python{python_version} on {arch} failed:\n{tail}"
            )
        built.add(missing.group(1))
        _build_pure_wheel(missing.group(1), wheelhouse)


def _build_pure_wheel(spec: str, wheelhouse: Path) -> None:
    """A wheel of `spec` from its source distribution, which must be pure Python: a compiled
    one would be for this machine, not Lambda's. pkg-config is pointed at an empty folder so
    that a binding like pyvips takes its ABI (pure) mode even where the C headers exist."""
    matched = REQUIREMENT_NAME.match(spec)
    if matched is None:
        raise PackagingError(f"cannot build {spec!r}: not a requirement")
    name = matched.group(1)
    before = set(wheelhouse.glob("*.whl"))
    with tempfile.TemporaryDirectory(prefix="imgpipe-no-pkgconfig-") as empty:
        env = {**os.environ, "PKG_CONFIG_LIBDIR": empty, "PKG_CONFIG_PATH": empty}
        done = subprocess.run(
            [
                *_pip(),
                "wheel",
                "--no-deps",
                "--no-binary",
                name,
                "--wheel-dir",
                str(wheelhouse),
                spec,
            ],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-30:])
        raise PackagingError(f"building a wheel of {spec} failed:\n{tail}")
    for wheel in set(wheelhouse.glob("*.whl")) - before:
        if not wheel.name.endswith("-none-any.whl"):
            wheel.unlink()
            raise PackagingError(
                f"{spec} has no wheel for the target and its source builds a platform wheel "
                f"({wheel.name}): it cannot be cross-installed without Docker"
            )


def _compile(site: Path, python_version: str) -> None:
    """Bytecode for the target Python, hash-based so it never goes stale against the fixed
    zip timestamps, with paths as Lambda will see them (/var/task/...)."""
    python = find_python(python_version)
    if python is None:
        print(
            f"no python{python_version} found: the zip carries no bytecode, and each cold start "
            "compiles what it imports"
        )
        return
    _run(
        [
            str(python),
            "-m",
            "compileall",
            "-q",
            "-j",
            "0",
            "--invalidation-mode",
            "unchecked-hash",
            "-s",
            str(site),
            "-p",
            LAMBDA_TASK_ROOT,
            str(site),
        ],
        f"compiling bytecode with {python}",
    )


def _files(root: Path) -> list[Path]:
    return sorted((p for p in root.rglob("*") if p.is_file()), key=lambda p: p.as_posix())


def _write_zip(root: Path, out: Path) -> None:
    """Entries in sorted order with fixed dates and modes: same inputs, same bytes."""
    partial = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in _files(root):
            info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=ZIP_DATE)
            executable = path.stat().st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
            info.create_system = 3  # Unix, so that the modes above are honoured
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    partial.replace(out)
