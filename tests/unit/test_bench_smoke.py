"""The benchmark's own measuring tools (bench/): SSIM and the peers' rendition sizes.
No timing here: speed is measured by `make bench`, never asserted in tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import quality
from engines.common import inside_size

from imgpipe.engine import geometry


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


def test_webp_search_harness_writes_pillows_bytes_and_applies_settings() -> None:
    # GIVEN a small textured RGB image
    import webp_search

    rgb = np.repeat(texture(64)[:, :, None], 3, axis=2).astype(np.uint8)
    rgb[:, :, 1] = 255 - rgb[:, :, 1]
    data = rgb.tobytes()
    # THEN libwebp's defaults through ctypes are exactly Pillow's bytes (the check raises if not)
    webp_search._check_harness(data, 64, 64)
    # AND a WebPConfig field reaches the encoder: no loop filter and no SNS change the bytes
    default = webp_search.encode(data, 64, 64)
    assert webp_search.encode(data, 64, 64, filter_strength=0, sns_strength=0) != default
    # AND a setting libwebp refuses is an error, not a silent default
    with pytest.raises(ValueError, match="refuses"):
        webp_search.encode(data, 64, 64, method=9)


def test_webp_search_verdict_is_per_size() -> None:
    from webp_search import Row

    base = Row("base", 100, {"large": 100.0, "thumb": 10.0}, {"large": 0.97, "thumb": 0.97})
    smaller_same = Row("a", 50, {"large": 99.0, "thumb": 10.0}, {"large": 0.9696, "thumb": 0.97})
    one_larger = Row("b", 50, {"large": 99.0, "thumb": 10.1}, {"large": 0.98, "thumb": 0.98})
    one_worse = Row("c", 50, {"large": 90.0, "thumb": 9.0}, {"large": 0.97, "thumb": 0.969})
    assert smaller_same.meets(base)  # within the 0.0005 SSIM tolerance
    assert not one_larger.meets(base)
    assert not one_worse.meets(base)


def test_e2e_cpu_accounting_reads_a_child_process() -> None:
    import subprocess
    import time

    import e2e

    # GIVEN a child that burns CPU for a moment
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nt = time.process_time()\n"
            "while time.process_time() - t < 0.3: pass\ntime.sleep(30)",
        ]
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and e2e._cpu_s(child.pid) < 0.25:
            time.sleep(0.05)
        # THEN it is listed as this process's child, with the CPU it used
        own, children = e2e._cpu_snapshot(os.getpid())
        assert own > 0
        assert children[child.pid] >= 0.25
    finally:
        child.kill()
        child.wait()


def test_the_encode_clock_counts_image_save_and_nothing_else() -> None:
    import io
    import time

    from engines import worker
    from PIL import Image

    unpatched = Image.Image.save
    try:
        spent = worker.clock_encodes()
        # GIVEN CPU burnt outside any save
        started = time.thread_time()
        while time.thread_time() - started < 0.05:
            pass
        assert spent[0] == 0.0
        # WHEN a noisy picture is saved as WebP, timed from outside as well
        picture = Image.frombytes("RGB", (256, 256), np.random.default_rng(3).bytes(256 * 256 * 3))
        before = time.thread_time()
        picture.save(io.BytesIO(), "WEBP", quality=80, method=4)
        outside = time.thread_time() - before
        # THEN the clock holds that encode's CPU: all of it but the wrapper's own few calls
        assert 0.5 * outside <= spent[0] <= outside
    finally:
        Image.Image.save = unpatched  # type: ignore[method-assign]
