"""The benchmark's own measuring tools (bench/): SSIM and the peers' rendition sizes.
No timing here: speed is measured by `make bench`, never asserted in tests."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import quality
from engines.common import inside_size

from imgpipe.core import geometry


def texture(size: int = 96) -> np.ndarray:
    rng = np.random.default_rng(7)
    coarse = rng.integers(0, 256, (size // 4, size // 4)).astype(np.float64)
    return np.kron(coarse, np.ones((4, 4)))  # blocks: structure at more than one scale


def test_ssim_of_an_image_with_itself_is_one() -> None:
    image = texture()
    assert quality.ssim(image, image) == pytest.approx(1.0, abs=1e-6)


def test_ssim_falls_for_a_shifted_image_and_less_for_light_noise() -> None:
    # GIVEN an image, a copy shifted by 3 px, and a copy with light noise
    image = texture()
    shifted = np.roll(image, 3, axis=1)
    noisy = image + np.random.default_rng(1).normal(0, 2, image.shape)
    # THEN the shift costs far more similarity than the noise
    assert quality.ssim(image, shifted) < 0.9
    assert 0.9 < quality.ssim(image, noisy) < 1.0


def test_ssim_refuses_images_of_different_sizes() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        quality.ssim(texture(96), texture(64))


def test_luma_weights_are_bt601() -> None:
    pixel = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], dtype=np.uint8)
    assert quality.luma(pixel)[0] == pytest.approx([76.245, 149.685, 29.07])


@pytest.mark.parametrize(
    ("width", "height"), [(4032, 3024), (3024, 4032), (1000, 333), (1000, 334), (200, 100)]
)
def test_peers_round_sizes_as_imgpipe_does(width: int, height: int) -> None:
    for box in (1600, 800, 256):
        assert inside_size(width, height, box) == geometry.inside_size(width, height, box, box)
