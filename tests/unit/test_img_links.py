"""The dashboard's /img paths (core.img_links): written as a person writes them, and read back
by the parser the /img route runs as the transform and format that were chosen."""

from __future__ import annotations

from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imgpipe.core.errors import ForbiddenError, InvalidRequestError, SigningKeyRequiredError
from imgpipe.core.img_links import ImgSigner, LinkOptions, img_link
from imgpipe.core.img_url import parse_img_path
from imgpipe.core.transform import ResizingType, TransformLimits

IMAGE_ID = "22he4rnxsxou2ppyh2o74w4zwq"
PAIRS = ((b"key", b"salt"), (b"old-key", b"old-salt"))
GRAVITIES = ["ce", "sm", "no", "so", "ea", "we", "noea", "nowe", "soea", "sowe"]
LIMITS = TransformLimits()


def read(path: str, signer: ImgSigner) -> tuple[object, object, str]:
    url = parse_img_path(
        path.removeprefix("/img"),
        keys=signer.keys,
        unsafe=signer.unsafe,
        presets={},
        signature_size=signer.signature_size,
    )
    return url.transform, url.format, url.source


def test_the_path_is_written_with_short_names_in_a_fixed_order() -> None:
    choice = LinkOptions(400, 300, "fill", "sm", "webp", 80, 1.5)
    assert choice.path(IMAGE_ID) == f"/rs:fill:400:300/g:sm/dpr:1.5/f:webp/q:80/plain/{IMAGE_ID}"
    assert LinkOptions().path(IMAGE_ID) == f"/plain/{IMAGE_ID}"
    assert LinkOptions(height=90, dpr=2.0).options() == "rs:fit:0:90/dpr:2"


@settings(max_examples=200, deadline=None)
@given(
    width=st.integers(0, 3000),
    height=st.integers(0, 3000),
    fit=st.sampled_from(get_args(ResizingType)),
    gravity=st.sampled_from(GRAVITIES),
    fmt=st.sampled_from([None, "avif", "webp", "jpeg", "png"]),
    quality=st.integers(0, 100),
    dpr=st.floats(0.01, 2.5, allow_nan=False),
    signature_size=st.integers(1, 32),
)
def test_any_choice_reads_back_as_itself(
    width: int,
    height: int,
    fit: ResizingType,
    gravity: str,
    fmt: str | None,
    quality: int,
    dpr: float,
    signature_size: int,
) -> None:
    choice = LinkOptions(width, height, fit, gravity, fmt, quality, dpr)  # type: ignore[arg-type]
    signer = ImgSigner(PAIRS, signature_size)
    path = img_link(IMAGE_ID, choice, signer, LIMITS)
    assert read(path, signer) == (choice.transform(), fmt, IMAGE_ID)


def test_the_first_pair_signs_and_unsafe_mode_writes_insecure() -> None:
    path = img_link(IMAGE_ID, LinkOptions(width=10), ImgSigner(PAIRS), LIMITS)
    read(path, ImgSigner(PAIRS[:1]))
    with pytest.raises(ForbiddenError):
        read(path, ImgSigner(PAIRS[1:]))
    unsigned = img_link(IMAGE_ID, LinkOptions(width=10), ImgSigner(unsafe=True), LIMITS)
    assert unsigned == f"/img/insecure/rs:fit:10:0/plain/{IMAGE_ID}"
    # a key, where one is set, signs even where unsigned URLs would do
    assert img_link(IMAGE_ID, LinkOptions(), ImgSigner(PAIRS, unsafe=True), LIMITS) != unsigned


def test_no_key_and_no_unsafe_mode_signs_nothing() -> None:
    with pytest.raises(SigningKeyRequiredError, match="configure a transform key"):
        img_link(IMAGE_ID, LinkOptions(), ImgSigner(), LIMITS)


def test_a_choice_over_the_limits_is_refused_before_signing() -> None:
    limits = TransformLimits(max_width=1000, max_height=1000, max_pixels=10**6, max_dpr=2)
    with pytest.raises(InvalidRequestError, match="dpr 3 is over"):
        img_link(IMAGE_ID, LinkOptions(width=10, dpr=3), ImgSigner(PAIRS), limits)
    with pytest.raises(InvalidRequestError, match="1200x"):
        img_link(IMAGE_ID, LinkOptions(width=600, dpr=2), ImgSigner(PAIRS), limits)
