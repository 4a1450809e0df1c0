"""A Debian source package's upstream tarball, by name, with apt-get: libtiff's, libwebp's and
libheif's test images ship in them and in no binary package.

apt-get runs with a state of its own in a cache folder: a deb-src list made from the
machine's own deb entries (same archives, suites, components and keys), so the system's apt
setup is neither read for sources nor changed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

APT_TIMEOUT_S = 600
_SOURCES = Path("/etc/apt/sources.list")
_SOURCE_PARTS = Path("/etc/apt/sources.list.d")


class SourceUnavailable(Exception):
    """apt-get is missing or could not fetch the source package."""


def deb_src_lines() -> list[str]:
    """A one-line deb-src entry for each deb entry of the machine (one-line and deb822)."""
    lines = []
    if _SOURCES.exists():
        for line in _SOURCES.read_text().splitlines():
            if line.split()[:1] == ["deb"]:
                lines.append("deb-src" + line.strip()[3:])
    for part in sorted(_SOURCE_PARTS.glob("*.sources")):
        for block in re.split(r"\n\s*\n", part.read_text()):
            fields = dict(
                (key.strip(), value.strip())
                for key, _, value in (
                    row.partition(":") for row in block.splitlines() if not row.startswith("#")
                )
            )
            if "deb" not in fields.get("Types", "").split() or "URIs" not in fields:
                continue
            keys = fields.get("Signed-By")
            options = f"[signed-by={keys}] " if keys and "\n" not in keys else ""
            for uri in fields["URIs"].split():
                for suite in fields.get("Suites", "").split():
                    lines.append(f"deb-src {options}{uri} {suite} {fields.get('Components', '')}")
    return lines


def upstream_tarball(package: str, version: str, state: Path, into: Path) -> Path:
    """`package`'s .orig tarball at upstream `version`, downloaded into `into`."""
    apt = shutil.which("apt-get")
    if apt is None:
        raise SourceUnavailable("apt-get is not installed")
    (state / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (state / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    sources = state / "sources.list"
    sources.write_text("\n".join(deb_src_lines()) + "\n")
    options = [
        f"-oDir::Etc::sourcelist={sources}",
        "-oDir::Etc::sourceparts=-",
        f"-oDir::State::Lists={state / 'lists'}",
        f"-oDir::Cache={state / 'cache'}",
        "-oAPT::Sandbox::User=root",
        "-qq",
    ]
    _run([apt, *options, "update"], into)
    # The release's own version: a security update's source may not be on the mirror yet.
    _run([apt, *options, "source", "--download-only", f"{package}/{_codename()}"], into)
    found = sorted(into.glob(f"{package}_{version}.orig.tar.*"))
    found = [path for path in found if not path.name.endswith(".asc")]
    if not found:
        offered = sorted(path.name for path in into.glob("*.orig.tar.*"))
        raise SourceUnavailable(f"Debian's {package} is not upstream {version}: {offered}")
    return found[0]


def _codename() -> str:
    release = Path("/etc/os-release")
    text = release.read_text() if release.exists() else ""
    found = re.search(r"^VERSION_CODENAME=\"?([a-z]+)", text, re.MULTILINE)
    if found is None:
        raise SourceUnavailable("no VERSION_CODENAME in /etc/os-release: not a Debian release")
    return found.group(1)


def _run(command: list[str], cwd: Path) -> None:
    try:
        done = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=APT_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise SourceUnavailable(f"{' '.join(command[-2:])} took over {exc.timeout} s") from exc
    if done.returncode != 0:
        raise SourceUnavailable(f"apt-get {command[-1]} failed: {done.stderr[-400:]}")
