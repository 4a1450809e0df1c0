"""The dashboard's /img paths (core.img_links): written as a person writes them, and read back
by the parser the /img route runs as the transform and format that were chosen."""

from __future__ import annotations

from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imgpipe.core.errors import InvalidRequestError
from imgpipe.core.img_links import LinkOptions, link_path
from imgpipe.core.img_url import parse_img_path, sign_img_path
from imgpipe.core.transform import ResizingType, TransformLimits

IMAGE_ID = "22he4rnxsxou2ppyh2o74w4zwq"
GRAVITIES = ["ce", "sm", "no", "so", "ea", "we", "noea", "nowe", "soea", "sowe"]
LIMITS = TransformLimits()


def test_the_path_is_written_with_short_names_in_a_fixed_order() -> None:
    choice = LinkOptions(400, 300, "fill", "sm", "webp", 80, 1.5)
    path = link_path(IMAGE_ID, choice, LIMITS)
    assert path == f"/rs:fill:400:300/g:sm/dpr:1.5/f:webp/q:80/plain/{IMAGE_ID}"
    assert link_path(IMAGE_ID, LinkOptions(), LIMITS) == f"/plain/{IMAGE_ID}"
    assert LinkOptions(height=90, dpr=2.0).options() == "rs:fit:0:90/dpr:2"


@settings(max_examples=200, deadline=None)
@given(
    # within the default limits at any dpr drawn: at most 5000 x 5000 = 25 Mpx
    width=st.integers(0, 2000),
    height=st.integers(0, 2000),
    fit=st.sampled_from(get_args(ResizingType)),
    gravity=st.sampled_from(GRAVITIES),
    fmt=st.sampled_from([None, "avif", "webp", "jpeg", "png"]),
    quality=st.integers(0, 100),
    dpr=st.floats(0.01, 2.5, allow_nan=False),
)
def test_any_choice_reads_back_as_itself(
    width: int,
    height: int,
    fit: ResizingType,
    gravity: str,
    fmt: str | None,
    quality: int,
    dpr: float,
) -> None:
    choice = LinkOptions(width, height, fit, gravity, fmt, quality, dpr)  # type: ignore[arg-type]
    signed = sign_img_path(link_path(IMAGE_ID, choice, LIMITS), b"key", b"salt")
    url = parse_img_path(signed, keys=[(b"key", b"salt")], unsafe=False, presets={})
    assert (url.transform, url.format, url.source) == (choice.transform(), fmt, IMAGE_ID)


def test_a_choice_over_the_limits_is_refused() -> None:
    limits = TransformLimits(max_width=1000, max_height=1000, max_pixels=10**6, max_dpr=2)
    with pytest.raises(InvalidRequestError, match="dpr 3 is over"):
        link_path(IMAGE_ID, LinkOptions(width=10, dpr=3), limits)
    with pytest.raises(InvalidRequestError, match="1200x"):
        link_path(IMAGE_ID, LinkOptions(width=600, dpr=2), limits)
