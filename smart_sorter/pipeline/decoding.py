"""Turn the bytes of one untrusted file into an upright RGB Pillow image, or a DecodeError."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps

from ..errors import DecodeError
from .finding import sniff_image_format

try:  # HEIC/HEIF from phones; optional so a broken wheel does not stop JPEG users.
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - depends on the installation
    pass

_WHITE = (255, 255, 255)
# decode_image refuses images over Pillow's limit itself, with a row in output.csv; the warning
# Pillow would print for them on the way only adds noise to the user's screen.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit and 32-bit greyscale scaled to 8 bits; Pillow's own convert would clip them white."""
    values = np.asarray(image)
    if image.mode == "F":
        low, high = float(np.nanmin(values)), float(np.nanmax(values))
        scaled = (values - low) / (high - low or 1.0) * 255.0
    else:
        high = 65535.0 if image.mode.startswith("I;16") or values.max() <= 65535 else float(values.max())
        scaled = values.astype(np.float64) / high * 255.0
    return Image.fromarray(np.clip(scaled, 0, 255).astype(np.uint8), "L")


_WIDE_GREY = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def to_rgb(image: Image.Image, *, on_white: bool = True) -> Image.Image:
    """Any Pillow mode to RGB: CMYK and 16-bit converted, transparency composited on white.

    With `on_white=False` transparency is dropped instead, as transformers' `load_image` does
    (`image.convert("RGB")`): the colour under a transparent pixel shows, whatever it is. 16-bit
    greyscale is scaled either way; a plain convert would clip it to white.
    """
    if image.mode == "RGB":
        return image
    if image.mode in _WIDE_GREY:
        return _to_8bit(image).convert("RGB")
    if not on_white:
        return image.convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode in ("LA", "La", "PA", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, _WHITE)
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image.convert("RGB")


def decode_image(data: bytes, *, draft_size: tuple[int, int] | None = None, on_white: bool = True) -> Image.Image:
    """Decode an image file's bytes to an upright RGB image.

    `draft_size`, when given, lets JPEGs decode at a reduced scale that still covers that size
    (the DCT does the downscaling almost for free). The first frame of an animation is used.
    Transparency is composited on white, or with `on_white=False` dropped as the transformers
    pipeline drops it. Truncated files, decompression bombs and non-images raise DecodeError.
    """
    if not data:
        raise DecodeError("empty file (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > Image.MAX_IMAGE_PIXELS:
            raise DecodeError(
                f"image too large to decode safely ({width}x{height} pixels, limit {Image.MAX_IMAGE_PIXELS})"
            )
        if draft_size is not None and image.format == "JPEG":
            image.draft("RGB", draft_size)
        image.seek(0)
        image.load()
        ImageOps.exif_transpose(image, in_place=True)  # in place: no copy when already upright
        return to_rgb(image, on_white=on_white)
    except Image.DecompressionBombError as error:
        raise DecodeError(f"image too large to decode safely ({error})") from error
    except Image.UnidentifiedImageError as error:
        kind = sniff_image_format(data[:16])
        raise DecodeError(f"{kind} header but unreadable content" if kind else "not an image file") from error
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError) as error:
        reason = str(error) or type(error).__name__
        if "truncated" in reason.lower():
            reason = "truncated file: the image data ends early"
        raise DecodeError(f"unreadable image: {reason}") from error
