"""imgproxy's own URL builder, the npm package @imgproxy/imgproxy-node (what Nuxt Image's and
Next.js' imgproxy providers build on), installed with npm into a cache folder once per
machine and run with node: shared by the tests that check imgpipe against its URLs.

Skipped, loudly, where node or the npm registry cannot be had; under CI=true that fails
(CI has both: .ci/run installs node and npm where they are missing)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

PACKAGE = "@imgproxy/imgproxy-node"
VERSION = "1.1.0"
KEY = "943b421c9eb07c830af81030552c86009268de4e532ba2ee2eab8247c6da0881"
SALT = "520f986b998545b4785e0defbc4f3c1203f22de2374a3d53cb7a7fe9fea309c5"
ENDPOINT = "http://cdn.example"

_BUILD = """
const { generateImageUrl } = require("@imgproxy/imgproxy-node");
const cases = JSON.parse(require("fs").readFileSync(0, "utf8"));
const urls = cases.map((c) =>
  generateImageUrl({
    endpoint: c.endpoint, url: c.url, options: c.options, key: c.key, salt: c.salt,
  })
);
process.stdout.write(JSON.stringify(urls));
"""


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the imgproxy builder tests: {reason}")
    pytest.skip(f"SKIPPING THE IMGPROXY BUILDER TESTS: {reason}")


def install_builder() -> Path:
    """A folder with @imgproxy/imgproxy-node installed (once per machine, then reused): for a
    test module's `builder` fixture."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("node and npm are not installed (apt-get install nodejs npm)")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = cache / "imgpipe-tests" / f"imgproxy-node-{VERSION}"
    installed = folder / "node_modules" / PACKAGE / "package.json"
    if not installed.exists():
        folder.mkdir(parents=True, exist_ok=True)
        try:
            done = subprocess.run(
                [npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund",
                 "--no-save", f"{PACKAGE}@{VERSION}"],
                capture_output=True, text=True, timeout=600, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            _unavailable("npm install took over 600 s")
        if done.returncode != 0 or not installed.exists():
            _unavailable(f"npm install {PACKAGE}@{VERSION} failed: {done.stderr[-500:]}")
    assert json.loads(installed.read_text())["version"] == VERSION
    return folder


def build(folder: Path, cases: list[dict[str, Any]]) -> list[str]:
    """The URLs the builder writes for each case (its options, source, key and salt)."""
    done = subprocess.run(
        ["node", "-e", _BUILD],
        input=json.dumps([{"endpoint": ENDPOINT, **case} for case in cases]),
        capture_output=True, text=True, cwd=folder, timeout=60, check=True,
    )  # fmt: skip
    urls: list[str] = json.loads(done.stdout)
    assert all(url.startswith(ENDPOINT + "/") for url in urls)
    return [url[len(ENDPOINT) :] for url in urls]
