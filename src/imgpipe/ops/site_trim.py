"""What the Lambda zip leaves out of the folder pip installed into: whole distributions that
only the local commands or Lambda's own runtime need (found from the installed metadata's
dependency graph), and what is never imported on Lambda (test suites, bytecode, scripts)."""

from __future__ import annotations

import email.parser
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

STRIPPED_DIRS = frozenset({"__pycache__", "tests"})

# The distribution name at the start of a requirement ("pyvips>=3.0; ..." -> pyvips).
REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed(site: Path) -> dict[str, tuple[Path, set[str], dict[str, set[str]]]]:
    """Each distribution in `site`: its dist-info, its plain dependencies, those per extra."""
    found: dict[str, tuple[Path, set[str], dict[str, set[str]]]] = {}
    parser = email.parser.HeaderParser()
    for info in site.glob("*.dist-info"):
        meta = parser.parsestr((info / "METADATA").read_text(encoding="utf-8"))
        plain: set[str] = set()
        by_extra: dict[str, set[str]] = {}
        for requirement in meta.get_all("Requires-Dist") or []:
            spec, _, marker = requirement.partition(";")
            matched = REQUIREMENT_NAME.match(spec)
            if matched is None:
                continue
            extra = _EXTRA.search(marker)
            if extra:
                by_extra.setdefault(_canonical(extra.group(1)), set()).add(
                    _canonical(matched.group(1))
                )
            else:
                # Other markers (python_version, sys_platform) are taken as true: keeping a
                # dependency too many is harmless, dropping one in use is not.
                plain.add(_canonical(matched.group(1)))
        found[_canonical(meta["Name"])] = (info, plain, by_extra)
    return found


def only_through(site: Path, root: str, names: Iterable[str]) -> set[str]:
    """`names` and what nothing else needs: the distributions reachable from `root` (with
    its aws extra) only through `names`."""
    installed = _installed(site)
    through = {_canonical(n) for n in names}

    def reachable(start: Iterable[str], blocked: set[str]) -> set[str]:
        seen: set[str] = set()
        todo = [n for n in start if n not in blocked]
        while todo:
            name = todo.pop()
            if name in seen or name not in installed:
                continue
            seen.add(name)
            todo.extend(d for d in installed[name][1] if d not in blocked)
        return seen

    _, root_plain, root_extras = installed[_canonical(root)]
    root_deps = root_plain | root_extras.get("aws", set())
    needed_elsewhere = reachable(root_deps, blocked=through) | {_canonical(root)}
    return reachable(through & set(installed), blocked=set()) - needed_elsewhere


def remove_distribution(site: Path, name: str) -> None:
    info = _installed(site)[name][0]
    record = info / "RECORD"
    for line in record.read_text(encoding="utf-8").splitlines():
        relative = line.rsplit(",", 2)[0] if line else ""
        path = (site / relative).resolve()
        if relative and path.is_relative_to(site.resolve()) and path.is_file():
            path.unlink()
    shutil.rmtree(info, ignore_errors=True)
    _remove_empty_dirs(site)


def _remove_empty_dirs(root: Path) -> None:
    for directory in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        if not any(directory.iterdir()):
            directory.rmdir()


def strip(site: Path) -> None:
    """Remove what is never imported on Lambda: test suites, foreign bytecode, scripts."""
    shutil.rmtree(site / "bin", ignore_errors=True)
    for directory in sorted((p for p in site.rglob("*") if p.is_dir()), reverse=True):
        if directory.name in STRIPPED_DIRS and directory.exists():
            shutil.rmtree(directory)
    for stray in site.rglob("*.pyc"):
        stray.unlink()
    # PEP 610's record of where a wheel came from: a temporary path here, different each build.
    for direct_url in site.glob("*.dist-info/direct_url.json"):
        direct_url.unlink()
        record = direct_url.parent / "RECORD"
        lines = record.read_text(encoding="utf-8").splitlines(keepends=True)
        record.write_text(
            "".join(line for line in lines if not line.split(",", 1)[0].endswith(direct_url.name)),
            encoding="utf-8",
        )
    _remove_empty_dirs(site)
