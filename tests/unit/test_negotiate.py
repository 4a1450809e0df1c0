"""Format negotiation on the Accept headers real browsers and tools send for an <img>."""

from __future__ import annotations

import pytest

from imgpipe.core.negotiate import (
    accepted_modern,
    best_formats,
    choose,
    choose_among,
    variant,
)

# What each sends for an image (`<img src>`), as MDN's "Default Accept values" lists them.
CHROME = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
FIREFOX = "image/avif,image/webp,*/*"  # 92 on
FIREFOX_128 = "image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"
FIREFOX_OLD = "image/webp,*/*"  # Firefox 65-92: WebP, no AVIF
SAFARI_16 = (
    "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,"
    "image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"
)
SAFARI_17 = "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"  # noqa: E501
SAFARI_13 = "image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5"
EDGE_LEGACY = "image/png, image/svg+xml, image/*; q=0.8, */*; q=0.5"  # EdgeHTML 18
CURL = "*/*"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (CHROME, "avif"),
        (FIREFOX, "avif"),
        (FIREFOX_128, "avif"),
        (FIREFOX_OLD, "webp"),
        (SAFARI_16, "avif"),
        (SAFARI_17, "avif"),
        (SAFARI_13, "default"),
        (EDGE_LEGACY, "default"),
        (CURL, "default"),
        (None, "default"),
        ("", "default"),
    ],
)
def test_variant_of_real_accept_headers(accept: str | None, expected: str) -> None:
    assert variant(accept) == expected


def test_choice_per_variant_and_alpha() -> None:
    assert choose(variant(CHROME), has_alpha=True) == "avif"
    assert choose(variant(FIREFOX_OLD), has_alpha=False) == "webp"
    assert choose(variant(CURL), has_alpha=False) == "jpeg"
    assert choose(variant(EDGE_LEGACY), has_alpha=True) == "png"


def test_quality_zero_refuses_and_case_and_spaces_do_not_matter() -> None:
    assert accepted_modern("image/avif;q=0, image/webp") == {"webp"}
    assert accepted_modern("IMAGE/AVIF ; Q=0.5") == {"avif"}
    assert accepted_modern("image/avif;q=abc") == frozenset()
    assert variant("image/*") == "default"  # a wildcard promises neither


def test_renditions_choose_among_what_exists() -> None:
    assert choose_among(["jpeg", "webp"], variant(CHROME)) == "webp"
    assert choose_among(["jpeg", "webp", "avif"], variant(CHROME)) == "avif"
    assert choose_among(["jpeg", "webp", "avif"], variant(FIREFOX_OLD)) == "webp"
    assert choose_among(["jpeg", "webp"], variant(CURL)) == "jpeg"
    assert choose_among(["webp"], variant(CURL)) == "webp"  # nothing else exists


def test_best_draws_from_what_the_client_takes() -> None:
    assert best_formats("avif", has_alpha=False) == ("avif", "webp", "jpeg")
    assert best_formats("webp", has_alpha=True) == ("webp", "png")
    assert best_formats("default", has_alpha=False) == ("jpeg",)
