"""Fuzz the decode entry point: `check_header` and `render` with the default options must
answer any bytes with a result or an imgpipe ImageError; any other exception is a crash.

    python fuzz/fuzz_decode.py [libFuzzer options]     (`make fuzz` runs it for a while)

With atheris installed this is a coverage-guided libFuzzer run over imgpipe's Python code
(libvips itself is not instrumented); without it, a plain loop of random mutations of the
seeds until -max_total_time. Either way the seed corpus is a few small valid images written
to fuzz/corpus/ first (generated, never committed), and a crashing input is saved under
fuzz/artifacts/.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
ARTIFACTS = HERE / "artifacts"


def seed_images() -> dict[str, bytes]:
    """Small valid images in every accepted format (Pillow and pillow-heif)."""
    import pillow_heif
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (32, 24), (255, 0, 0))
    ImageDraw.Draw(image).rectangle((16, 12, 31, 23), fill=(0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation
    exif[0x010F] = "Canon"

    def save(img: Image.Image, fmt: str, **options: object) -> bytes:
        out = io.BytesIO()
        img.save(out, fmt, **options)  # type: ignore[arg-type]
        return out.getvalue()

    palette = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    frames = [image, image.rotate(90), image.rotate(180)]
    heic = io.BytesIO()
    pillow_heif.from_pillow(image).save(heic, quality=50)
    return {
        "photo.jpg": save(image, "JPEG", quality=80, exif=exif.tobytes()),
        "progressive.jpg": save(image, "JPEG", progressive=True),
        "cmyk.jpg": save(image.convert("CMYK"), "JPEG"),
        "alpha.png": save(image.convert("RGBA"), "PNG"),
        "palette.png": save(palette, "PNG", transparency=0),
        "grey.png": save(image.convert("L"), "PNG"),
        "animated.gif": save(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "lossy.webp": save(image, "WEBP", quality=50),
        "animated.webp": save(frames[0], "WEBP", save_all=True, append_images=frames[1:]),
        "lzw.tiff": save(image, "TIFF", compression="tiff_lzw"),
        "image.avif": save(image, "AVIF", quality=50),
        "image.heic": heic.getvalue(),
    }


def write_corpus() -> list[bytes]:
    CORPUS.mkdir(parents=True, exist_ok=True)
    seeds = seed_images()
    for name, data in seeds.items():
        (CORPUS / name).write_bytes(data)
    return list(seeds.values())


def make_target() -> Callable[[bytes], None]:
    """The function under test: bytes in, an ImageError or nothing out."""
    from imgpipe.config import Settings
    from imgpipe.core.errors import ImageError
    from imgpipe.engine import check_header, render

    options = Settings().render_options()

    def one_input(data: bytes) -> None:
        with contextlib.suppress(ImageError):
            check_header(data, options.limits)
        with contextlib.suppress(ImageError):
            render(data, options)

    return one_input


def run_atheris(argv: list[str]) -> None:
    import atheris

    with atheris.instrument_imports(include=["imgpipe"]):
        target = make_target()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    args = [argv[0], f"-artifact_prefix={ARTIFACTS}/", "-timeout=20", *argv[1:]]
    if not any(not arg.startswith("-") for arg in argv[1:]):
        args.append(str(CORPUS))
    atheris.Setup(args, target)
    atheris.Fuzz()


def mutate(data: bytes, pool: list[bytes], rng: random.Random) -> bytes:
    """One to four random edits: flip, overwrite with an interesting value, insert,
    delete, truncate, or splice in a piece of another seed."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(buf)) if buf else 0
        match rng.randrange(6):
            case 0 if buf:
                buf[at] ^= 1 << rng.randrange(8)
            case 1 if buf:
                value = rng.choice([0x00, 0xFF, 0x7F, 0x80, 0x01])
                buf[at : at + 4] = bytes([value] * min(4, len(buf) - at))
            case 2:
                buf[at:at] = rng.randbytes(rng.randint(1, 16))
            case 3 if buf:
                del buf[at : at + rng.randint(1, 64)]
            case 4 if buf:
                del buf[rng.randrange(len(buf)) :]
            case _:
                other = rng.choice(pool)
                start = rng.randrange(len(other)) if other else 0
                buf[at:at] = other[start : start + rng.randint(1, 256)]
    return bytes(buf)


def run_fallback(argv: list[str], seeds: list[bytes]) -> None:
    """Without atheris: random mutations of the seeds, same target, same crash rule."""
    seconds = 60.0
    for arg in argv[1:]:
        if arg.startswith("-max_total_time="):
            seconds = float(arg.split("=", 1)[1])
    target = make_target()
    rng = random.Random(0)  # noqa: S311 -- reproducible mutations, not secrets
    deadline = time.monotonic() + seconds
    runs = 0
    while time.monotonic() < deadline:
        data = mutate(rng.choice(seeds), seeds, rng)
        try:
            target(data)
        except Exception as exc:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            path = ARTIFACTS / f"crash-{hashlib.sha256(data).hexdigest()}"
            path.write_bytes(data)
            print(f"CRASH after {runs} runs: {type(exc).__name__}: {exc}; input saved to {path}")
            raise
        runs += 1
    print(f"fallback fuzzer: {runs} runs in {seconds:g} s, no crash")


def main(argv: list[str]) -> None:
    seeds = write_corpus()
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed: falling back to random mutations")
        run_fallback(argv, seeds)
        return
    run_atheris(argv)


if __name__ == "__main__":
    main(sys.argv)
