"""docs/benchmarks.png: images/s per core and output size per engine, drawn with Pillow."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

WIDTH, ROW, LEFT, PAD = 1000, 34, 290, 16
COLOURS = {"imgpipe": (34, 120, 200), "floor": (150, 150, 150)}
OTHER = (230, 140, 40)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for name in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default()


def draw(rows: list[tuple[str, float, float, float]], out: Path, title: str) -> None:
    """rows: (engine, images/s per core, MB of output per image, SSIM). Two bar groups."""
    font, small = _font(15), _font(13)
    panels = [
        ("images/s on one core (higher is better)", 1, "{:.2f}"),
        ("output KB per image, all six renditions (lower is better)", 2, "{:.0f}"),
    ]
    height = PAD * 3 + 30 + len(panels) * (len(rows) * ROW + 40)
    image = Image.new("RGB", (WIDTH, height), "white")
    pen = ImageDraw.Draw(image)
    pen.text((PAD, PAD), title, fill="black", font=_font(18))
    y = PAD + 40
    for caption, column, fmt in panels:
        pen.text((PAD, y), caption, fill=(60, 60, 60), font=font)
        y += 26
        top = max(row[column] for row in rows) or 1.0
        for row in rows:
            name, value = row[0], row[column]
            colour = COLOURS.get(name.split(" ")[0], OTHER)
            pen.text((PAD, y + 8), f"{name} (SSIM {row[3]:.4f})", fill="black", font=small)
            length = int((WIDTH - LEFT - 90) * value / top)
            pen.rectangle((LEFT, y + 4, LEFT + length, y + ROW - 6), fill=colour)
            pen.text((LEFT + length + 6, y + 8), fmt.format(value), fill="black", font=small)
            y += ROW
        y += 14
    image.save(out, optimize=True)
