"""URLs that imgproxy's own URL builder writes parse to the Transform they mean, signed and
unsigned: the npm package @imgproxy/imgproxy-node (what Nuxt Image's and Next.js' imgproxy
providers build on), installed with npm into a cache folder and run with node.

Skipped, loudly, where node or the npm registry cannot be had; under CI=true that fails
(CI has both: .ci/run installs node and npm where they are missing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from imgpipe.config import Settings
from imgpipe.core.img_url import ImgUrl, parse_img_path, rendition_presets
from imgpipe.core.transform import Gravity, Transform
from imgproxy_node import KEY, SALT, build, install_builder

SOURCE = "local:///uploads/abc/IMG_0001.jpg"


@pytest.fixture(scope="module")
def builder() -> Path:
    return install_builder()


PRESETS = rendition_presets(
    Settings(
        renditions=[
            {"name": "thumb", "width": 256, "height": 256, "fit": "cover", "gravity": "smart"}
        ]
    )
    .render_options()
    .renditions
)

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
