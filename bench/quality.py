"""Quality of a rendition: SSIM of its luma against a reference resize of the full-resolution
decode, written with numpy alone (no scipy, no scikit-image).

    ssim(a, b)             mean SSIM of two 2-D float arrays (0-255), Wang et al. 2004: an
                           11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, L = 255
    luma(rgb)              ITU-R BT.601 luma of an H x W x 3 (or H x W) array, as float
    Reference(path)        the original decoded at full resolution (no shrink-on-load),
                           EXIF-rotated, converted to sRGB if it carries a profile, in float;
                           .at(w, h) is a Lanczos3 resize of it, computed in float, never
                           rounded to 8 bits, to exactly w x h; .fill(w, h) the same of
                           its centre cut to w:h first (a fill, or cover, resize)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

_K1, _K2, _L = 0.01, 0.03, 255.0
_C1, _C2 = (_K1 * _L) ** 2, (_K2 * _L) ** 2
_SIGMA, _RADIUS = 1.5, 5


def _gaussian() -> Array:
    x = np.arange(-_RADIUS, _RADIUS + 1, dtype=np.float64)
    g = np.exp(-(x**2) / (2 * _SIGMA**2))
    return g / g.sum()


_WINDOW = _gaussian()


def _filter(image: NDArray[Any]) -> NDArray[np.float32]:
    """Separable Gaussian filter in float (libvips' convsep: ~10x numpy's shifted sums),
    keeping the 'valid' region only (no padding), as the reference implementation does."""
    import pyvips

    height, width = image.shape
    source = pyvips.Image.new_from_memory(
        np.ascontiguousarray(image, dtype=np.float32).data, width, height, 1, "float"
    )
    mask = pyvips.Image.new_from_list([list(_WINDOW)]).cast("double")
    filtered = source.convsep(mask, precision="float").crop(
        _RADIUS, _RADIUS, width - 2 * _RADIUS, height - 2 * _RADIUS
    )
    return np.ndarray(
        buffer=filtered.write_to_memory(),
        dtype=np.float32,
        shape=(height - 2 * _RADIUS, width - 2 * _RADIUS),
    )


def ssim(a: NDArray[Any], b: NDArray[Any]) -> float:
    """Mean SSIM of two equally sized 2-D images with values in 0-255."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if min(a.shape) < len(_WINDOW):
        raise ValueError(f"images must be at least {len(_WINDOW)} px on each side")
    a = a.astype(np.float32)
    b = b.astype(np.float32)
    mu_a, mu_b = _filter(a), _filter(b)
    aa = _filter(a * a) - mu_a * mu_a
    bb = _filter(b * b) - mu_b * mu_b
    ab = _filter(a * b) - mu_a * mu_b
    numerator = (2 * mu_a * mu_b + _C1) * (2 * ab + _C2)
    denominator = (mu_a * mu_a + mu_b * mu_b + _C1) * (aa + bb + _C2)
    return float((numerator / denominator).mean(dtype=np.float64))


def luma(pixels: NDArray[Any]) -> Array:
    """BT.601 luma (0.299 R + 0.587 G + 0.114 B) as float; grey passes through."""
    values = pixels.astype(np.float64)
    if values.ndim == 2:
        return values
    if values.shape[2] in (1, 2):
        return values[:, :, 0]
    return values[:, :, :3] @ np.array([0.299, 0.587, 0.114])


def decode_luma(data: bytes) -> Array:
    """Luma of an encoded rendition (JPEG, WebP, ...), decoded by Pillow."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return luma(np.asarray(im.convert("RGB")))


class Reference:
    """The full-resolution decode of an original, upright, sRGB, in float."""

    def __init__(self, path: Path) -> None:
        import pyvips

        image = pyvips.Image.new_from_file(str(path))
        if image.get_typeof("icc-profile-data"):
            image = image.icc_transform("srgb", embedded=True, intent="perceptual")
        image = image.autorot()
        if image.bands > 3:
            image = image.extract_band(0, n=3)
        self.image = image.cast("float").copy_memory()

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image.width), int(self.image.height)

    def at(self, width: int, height: int) -> Array:
        """Luma of a Lanczos3 resize in float to exactly width x height."""
        return _resized_luma(self.image, width, height)

    def fill(self, width: int, height: int) -> Array:
        """Luma of the centre of the image cut to width:height, then resized as at() does:
        what a fill (cover) resize to exactly width x height shows."""
        src_w, src_h = self.size
        scale = max(width / src_w, height / src_h)
        crop_w, crop_h = min(src_w, round(width / scale)), min(src_h, round(height / scale))
        cropped = self.image.crop((src_w - crop_w) // 2, (src_h - crop_h) // 2, crop_w, crop_h)
        return _resized_luma(cropped, width, height)


def _resized_luma(image: Any, width: int, height: int) -> Array:
    """Luma of a Lanczos3 resize of a float libvips image to exactly width x height."""
    src_w, src_h = int(image.width), int(image.height)
    resized = image.resize(width / src_w, vscale=height / src_h, kernel="lanczos3", gap=0.0)
    resized = resized.crop(0, 0, min(width, resized.width), min(height, resized.height))
    if (resized.width, resized.height) != (width, height):
        resized = resized.embed(0, 0, width, height, extend="copy")
    pixels = np.ndarray(
        buffer=resized.write_to_memory(),
        dtype=np.float32,
        shape=(height, width, int(resized.bands)),
    )
    return luma(pixels)


def _score_one(path: Path, outputs: dict[str, Path]) -> dict[str, dict[str, float]]:
    reference = Reference(path)
    cache: dict[tuple[int, int], Array] = {}
    result: dict[str, dict[str, float]] = {}
    for engine, root in outputs.items():
        for rendition in sorted((root / path.stem).iterdir()):
            got = decode_luma(rendition.read_bytes())
            height, width = got.shape
            if (width, height) not in cache:
                cache[(width, height)] = reference.at(width, height)
            result.setdefault(engine, {})[rendition.name] = ssim(got, cache[(width, height)])
    return result


def score(
    files: list[Path], outputs: dict[str, Path], processes: int = 2
) -> dict[str, dict[str, float]]:
    """Mean SSIM per engine and rendition file name ("large.jpg", ...): each output in
    outputs[engine]/<stem>/<name> against the reference resized to that output's own size.
    One image per process at a time."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    sums: dict[str, dict[str, list[float]]] = {engine: {} for engine in outputs}
    # spawn, not fork: libvips' threads do not survive a fork.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        for result in pool.map(_score_one, files, [outputs] * len(files)):
            for engine, by_name in result.items():
                for name, value in by_name.items():
                    sums[engine].setdefault(name, []).append(value)
    return {
        engine: {name: float(np.mean(values)) for name, values in by_name.items()}
        for engine, by_name in sums.items()
    }
