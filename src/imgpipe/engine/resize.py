"""The cascade: every rendition's size from the one decoded image, each resized from the
smallest image already in memory that is still big enough, and "cover" crops.

Three independent decodes of one photo (one per size) were slower than Pillow and used several
times the memory; one decode at the largest size, cascading down, is neither. The sizes
themselves are geometry.py's integer arithmetic.
"""

from __future__ import annotations

from imgpipe.core.rendering import RenderPreset
from imgpipe.engine import geometry
from imgpipe.engine.header import Header
from imgpipe.engine.vips import VipsImage

Size = tuple[int, int]


def resize_sizes(header: Header, specs: tuple[RenderPreset, ...]) -> list[Size]:
    """The size each preset resizes the whole image to (before any cover crop), in order."""
    return [
        geometry.resize_size(header.width, header.height, spec.width, spec.height, spec.fit)
        for spec in specs
    ]


def decode_size(sizes: list[Size]) -> Size:
    """The one size to decode to: large enough for every rendition on both sides."""
    return max(width for width, _ in sizes), max(height for _, height in sizes)


def cascade(base: VipsImage, base_size: Size, sizes: list[Size]) -> dict[Size, VipsImage]:
    """Every size in `sizes`, in memory: each resized from the smallest image already made
    that is at least as big, largest first, starting from `base` (`base_size`)."""
    resized: dict[Size, VipsImage] = {base_size: base}
    for width, height in sorted(set(sizes), key=lambda size: -(size[0] * size[1])):
        if (width, height) in resized:
            continue
        source = min(
            (img for (w, h), img in resized.items() if w >= width and h >= height),
            key=lambda img: img.width * img.height,
        )
        resized[(width, height)] = source.thumbnail_image(
            width, height=height, size="force", no_rotate=True
        ).copy_memory()
    return resized


def cropped(image: VipsImage, size: Size, header: Header, spec: RenderPreset) -> VipsImage:
    """The rendition's final pixels from its resized image: cropped to the box for "cover"
    where the resize overflows it (at the centre, or for gravity "smart" where libvips'
    attention finds the most interesting part), as it is otherwise."""
    target_w, target_h = geometry.target_size(
        header.width, header.height, spec.width, spec.height, spec.fit
    )
    if (target_w, target_h) == size:
        return image
    left, top, crop_w, crop_h = geometry.centre_crop(*size, target_w, target_h)
    if spec.gravity == "smart":
        return image.smartcrop(crop_w, crop_h, interesting="attention")
    return image.crop(left, top, crop_w, crop_h)
