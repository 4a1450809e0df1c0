"""Public conformance suites nobody here wrote, file by file, through imgpipe's render: each
ends as its manifest says (processed, with at least its PSNR against an independent oracle, or
refused with its code), never a crash, a hang or a 500, every rendition upright and free of
metadata. A case that is processed but wrong is a known defect of issue 25: xfail(strict), so
its fix fails here until the manifest is regenerated (tools/conformance.py manifest).

The suites come from PyPI sdists and Debian source packages (suites.py): skipped loudly where
they cannot be had, a failure under CI=true."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from fidelity import failures, load_manifest, run_case
from suites import SUITES, available

pytestmark = pytest.mark.conformance


def _cases() -> list[Any]:
    params = []
    for suite in SUITES:
        for name, entry in load_manifest(suite)["files"].items():
            defect = entry.get("known_defect")
            marks = [pytest.mark.xfail(strict=True, reason=defect)] if defect else []
            params.append(pytest.param(suite, name, entry, marks=marks, id=f"{suite}/{name}"))
    return params


def _files(suite: str) -> dict[str, Path]:
    found = available(suite)
    if isinstance(found, str):
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the conformance suite {suite}: {found}")
        pytest.skip(f"SKIPPING THE CONFORMANCE SUITE {suite.upper()}: {found}")
    return found


@pytest.fixture
def path(suite: str, name: str) -> Path:
    """The case's file, its suite fetched on first use (once per process): a fixture, so a
    first download (a minute or more for Pillow's sdist) is no part of the hang guard."""
    return _files(suite)[name]


# A hang guard on the render alone (func_only): the slowest file renders in a few seconds.
@pytest.mark.timeout(120, func_only=True)
@pytest.mark.parametrize(("suite", "name", "entry"), _cases())
def test_file_ends_as_its_manifest_says(
    suite: str, name: str, entry: dict[str, Any], path: Path
) -> None:
    # GIVEN a suite's file WHEN imgpipe renders it as a rendering process does
    outcome = run_case(suite, path)
    # THEN it ends as reviewed: the same verdict and code, its renditions upright and clean,
    # its pixels at least as close to the oracle's as they were
    assert failures(entry, outcome) == [], (suite, name, outcome)


@pytest.mark.parametrize("suite", list(SUITES))
def test_the_manifest_lists_every_file_of_its_suite(suite: str) -> None:
    manifest = load_manifest(suite)
    assert (manifest["package"], manifest["version"]) == (
        SUITES[suite].package,
        SUITES[suite].version,
    )
    assert sorted(manifest["files"]) == sorted(_files(suite))
