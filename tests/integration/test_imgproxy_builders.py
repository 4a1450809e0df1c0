"""URLs that imgproxy's own URL builder writes parse to the Transform they mean, signed and
unsigned: the npm package @imgproxy/imgproxy-node (what Nuxt Image's and Next.js' imgproxy
providers build on), installed with npm into a cache folder and run with node.

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

from imgpipe.config import Settings
from imgpipe.core.img_url import ImgUrl, parse_img_path, rendition_presets
from imgpipe.core.transform import Gravity, Transform

PACKAGE = "@imgproxy/imgproxy-node"
VERSION = "1.1.0"
KEY = "943b421c9eb07c830af81030552c86009268de4e532ba2ee2eab8247c6da0881"
SALT = "520f986b998545b4785e0defbc4f3c1203f22de2374a3d53cb7a7fe9fea309c5"
ENDPOINT = "http://cdn.example"
SOURCE = "local:///uploads/abc/IMG_0001.jpg"
PRESETS = rendition_presets(
    Settings(
        renditions=[
            {"name": "thumb", "width": 256, "height": 256, "fit": "cover", "gravity": "smart"}
        ]
    )
    .render_options()
    .renditions
)

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


@pytest.fixture(scope="module")
def builder() -> Path:
    """A folder with @imgproxy/imgproxy-node installed (once per machine, then reused)."""
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


CASES: list[tuple[dict[str, Any], Transform, str | None]] = [
    (
        {
            "resize": {
                "resizing_type": "fill",
                "width": 300,
                "height": 200,
                "enlarge": 1,
                "extend": {"extend": 1, "gravity": {"type": "sowe", "x_offset": 5, "y_offset": 6}},
            },
            "rotate": 90,
            "quality": 80,
            "format": "webp",
        },
        Transform(
            "fill",
            300,
            200,
            enlarge=True,
            extend=True,
            extend_gravity=Gravity("sowe", 5, 6),
            rotate=90,
            quality=80,
        ),
        "webp",
    ),
    (
        {"width": 300, "height": 200, "resizing_type": "fill-down", "gravity": {"type": "sm"}},
        Transform("fill-down", 300, 200, gravity=Gravity("sm")),
        None,
    ),
    (
        {
            "size": {"width": 10, "height": 20, "enlarge": True},
            "dpr": 2,
            "min_width": 5,
            "min_height": 6,
            "zoom": 1.5,
        },
        Transform(
            width=10,
            height=20,
            enlarge=True,
            dpr=2.0,
            min_width=5,
            min_height=6,
            zoom_x=1.5,
            zoom_y=1.5,
        ),
        None,
    ),
    (
        {
            "gravity": {"type": "fp", "x": 0.25, "y": 0.75},
            "crop": {"width": 0.5, "height": 100, "gravity": {"type": "nowe"}},
        },
        Transform(
            gravity=Gravity("fp", 0.25, 0.75),
            crop_width=0.5,
            crop_height=100,
            crop_gravity=Gravity("nowe"),
        ),
        None,
    ),
    (
        {
            "background": "ff0000",
            "blur": 2,
            "sharpen": 0.5,
            "pixelate": 4,
            "auto_rotate": False,
            "strip_metadata": 1,
            "cachebuster": "v2",
            "format_quality": [
                {"format": "jpeg", "quality": 70},
                {"format": "webp", "quality": 60},
            ],
            "format": "jpg",
        },
        Transform(
            background=(255, 0, 0),
            blur=2.0,
            sharpen=0.5,
            pixelate=4,
            auto_rotate=False,
            cachebuster="v2",
            format_quality=(("jpeg", 70), ("webp", 60)),
        ),
        "jpeg",
    ),
    (
        {
            "background": {"r": 1, "g": 2, "b": 3},
            "zoom": {"zoom_x": 0.5, "zoom_y": 2},
            "extend": {"extend": True},
            "enlarge": True,
            "resizing_type": "auto",
            "width": 50,
        },
        Transform(
            "auto", 50, background=(1, 2, 3), zoom_x=0.5, zoom_y=2.0, extend=True, enlarge=True
        ),
        None,
    ),
    (
        {"preset": ["thumb"], "format": "avif"},
        Transform(
            "fill",
            256,
            256,
            gravity=Gravity("sm"),
            format_quality=(
                ("avif", 55),
                ("jpeg", 82),
                ("png", 100),
                ("webp", 80),
            ),
        ),
        "avif",
    ),
    ({}, Transform(), None),
]


def parse(path: str, *, signed: bool) -> ImgUrl:
    keys = [(bytes.fromhex(KEY), bytes.fromhex(SALT))]
    return parse_img_path(path, keys=keys, unsafe=not signed, presets=PRESETS)


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "insecure"])
def test_the_builders_urls_parse_to_the_transform_they_mean(builder: Path, signed: bool) -> None:
    sign = {"key": KEY, "salt": SALT} if signed else {}
    cases = [{"url": SOURCE, "options": options, **sign} for options, _, _ in CASES]
    paths = build(builder, cases)
    for path, (options, expected, fmt) in zip(paths, CASES, strict=True):
        assert path.startswith("/insecure/") != signed, path
        url = parse(path, signed=signed)
        assert (url.source, url.transform, url.format) == (SOURCE, expected, fmt), options


def test_a_plain_source_with_its_extension_parses_as_the_builder_means(builder: Path) -> None:
    plain = {"value": "uploads/abc/IMG_0001.jpg@png", "displayAs": "plain"}
    (path,) = build(builder, [{"url": plain, "options": {"width": 64}, "key": KEY, "salt": SALT}])
    assert "/plain/uploads/abc/IMG_0001.jpg@png" in path
    url = parse(path, signed=True)
    assert (url.source, url.transform, url.format) == (
        "uploads/abc/IMG_0001.jpg",
        Transform(width=64),
        "png",
    )


def test_a_url_the_builder_signed_with_another_key_is_refused(builder: Path) -> None:
    other = {"key": "00" * 32, "salt": SALT}
    (path,) = build(builder, [{"url": SOURCE, "options": {"width": 64}, **other}])
    with pytest.raises(Exception, match="signature does not match") as caught:
        parse(path, signed=True)
    assert getattr(caught.value, "status", None) == 403
