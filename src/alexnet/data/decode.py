"""Robust image decoding: any mode Pillow reads becomes RGB; a bad file gets a reason, never an exception."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

SKIP_REASONS = ("hidden_file", "empty", "not_an_image", "truncated", "corrupt", "too_large")
PILLOW_PIXEL_LIMIT = 2 * Image.MAX_IMAGE_PIXELS  # Pillow refuses larger images outright (DecompressionBombError)
IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")


@dataclass(frozen=True)
class ImageInfo:
    ok: bool
    width: int = 0
    height: int = 0
    reason: str = ""


def is_hidden(name: str) -> bool:
    return name.startswith(".")


def inspect_bytes(data: bytes, name: str, max_pixels: int = Image.MAX_IMAGE_PIXELS) -> ImageInfo:
    """Decode fully (a header alone does not reveal truncation) and say whether the image is usable.

    An image of more than `max_pixels` (data.max_image_pixels) is `too_large`, judged from its header before
    any pixel is decoded: a decompression bomb of a few kB could otherwise claim gigabytes.
    """
    if is_hidden(name):
        return ImageInfo(ok=False, reason="hidden_file")
    if not data:
        return ImageInfo(ok=False, reason="empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # judged below, by our own limit
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > max_pixels:
                    return ImageInfo(ok=False, width=width, height=height, reason="too_large")
                _to_rgb(image)
    except Image.DecompressionBombError:
        return ImageInfo(ok=False, reason="too_large")
    except UnidentifiedImageError:
        return ImageInfo(ok=False, reason="corrupt" if data.startswith(IMAGE_SIGNATURES) else "not_an_image")
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        reason = "truncated" if "truncated" in str(error).lower() else "corrupt"
        return ImageInfo(ok=False, reason=reason)
    if width < 1 or height < 1:
        return ImageInfo(ok=False, reason="corrupt")
    return ImageInfo(ok=True, width=width, height=height)


def inspect_image(path: str | Path) -> ImageInfo:
    path = Path(path)
    if is_hidden(path.name):
        return ImageInfo(ok=False, reason="hidden_file")
    return inspect_bytes(path.read_bytes(), path.name)


def load_rgb(path_or_bytes: str | Path | bytes) -> Image.Image:
    """An RGB image whatever the file's mode (CMYK, greyscale, palette, alpha) or extension says."""
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    with Image.open(source) as image:
        return _to_rgb(image)


def _to_rgb(image: Image.Image) -> Image.Image:
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        # Plain convert("RGB") would expose whatever colour hides under transparent pixels.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.point(lambda value: value / 256).convert("L")
    return image.convert("RGB")
