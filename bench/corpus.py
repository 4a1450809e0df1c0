"""The benchmark corpus: real photographs from Debian's gnome-backgrounds and mate-backgrounds
packages (downloaded at bench time, never committed), plus camera-like 12 MP JPEGs made from
them (4032x3024 like a phone, quality 92, an EXIF orientation and camera tags).

    python bench/corpus.py [DIR]    # builds DIR (default bench/.corpus) and prints a summary
"""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image
from PIL.TiffImagePlugin import IFDRational

PACKAGES = ("gnome-backgrounds", "mate-backgrounds")
CAMERA_SIZE = (4032, 3024)  # 12.2 MP, an iPhone's main camera
ORIENTATIONS = (1, 6, 3, 8, 1, 6)
DEFAULT_DIR = Path(__file__).parent / ".corpus"


def _download(into: Path) -> Path:
    """apt-get download + dpkg-deb -x: no root needed, nothing installed system-wide."""
    debs = into / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["apt-get", "download", *PACKAGES], cwd=debs, check=True, stdout=subprocess.DEVNULL
    )
    tree = into / "tree"
    for deb in debs.glob("*.deb"):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True)
    return tree / "usr" / "share" / "backgrounds"


def _camera_jpeg(photo: Image.Image, orientation: int) -> bytes:
    """What a phone would store: 4032x3024 pixels, rotated so that the EXIF orientation
    makes it upright again, with camera tags."""
    img = photo.convert("RGB").resize(CAMERA_SIZE, Image.Resampling.LANCZOS)
    inverse = {
        1: None,
        3: Image.Transpose.ROTATE_180,
        6: Image.Transpose.ROTATE_90,
        8: Image.Transpose.ROTATE_270,
    }[orientation]
    if inverse is not None:
        img = img.transpose(inverse)
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "Apple"
    exif[0x0110] = "iPhone 13"
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = "2024:06:01 12:34:56"
    sub[0x8827] = 100
    sub[0x829A] = IFDRational(1, 250)  # RATIONAL, as cameras write it
    sub[0x920A] = IFDRational(26, 10)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92, exif=exif.tobytes(), subsampling=0)
    return buf.getvalue()


def build(target: Path = DEFAULT_DIR, minimum: int = 24) -> list[Path]:
    """Real JPEGs of 12 MP or more, topped up with camera-like ones to `minimum`."""
    photos_dir = target / "photos"
    if photos_dir.exists() and len(list(photos_dir.glob("*.jpg"))) >= minimum:
        return sorted(photos_dir.glob("*.jpg"))
    with tempfile.TemporaryDirectory() as tmp:
        backgrounds = _download(Path(tmp))
        sources = sorted(backgrounds.rglob("*.jpg"))
        photos_dir.mkdir(parents=True, exist_ok=True)
        made: list[Path] = []
        for src in sources:
            with Image.open(src) as im:
                if im.width * im.height >= 12_000_000:
                    dest = photos_dir / f"real-{src.stem}.jpg"
                    dest.write_bytes(src.read_bytes())
                    made.append(dest)
        n = 0
        while len(made) < minimum:
            src = sources[n % len(sources)]
            orientation = ORIENTATIONS[n % len(ORIENTATIONS)]
            with Image.open(src) as im:
                dest = photos_dir / f"camera-{n:02d}-{src.stem}-o{orientation}.jpg"
                dest.write_bytes(_camera_jpeg(im, orientation))
            made.append(dest)
            n += 1
    return sorted(made)


def describe(files: list[Path]) -> str:
    total_mp = 0.0
    for f in files:
        with Image.open(f) as im:
            total_mp += im.width * im.height / 1e6
    size = sum(f.stat().st_size for f in files)
    return (
        f"{len(files)} JPEGs, {total_mp / len(files):.1f} MP on average, "
        f"{size / len(files) / 1e6:.1f} MB on average"
    )


if __name__ == "__main__":
    files = build(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR)
    print(describe(files))
