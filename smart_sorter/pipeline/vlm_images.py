"""Images as a vision-language model receives them: decoded upright, scaled down, and for a server
re-encoded as a JPEG data URL (any input format the decoder reads, HEIC and 16-bit TIFF included).
A video's sampled frames (upright RGB images from `pipeline.video`) are scaled and encoded the same way."""

from __future__ import annotations

import base64
import io

from PIL import Image

from .decoding import decode_image


def scaled_for_model(image: Image.Image, longest_side: int) -> Image.Image:
    """An upright RGB image with its longer side at most `longest_side` pixels."""
    if max(image.size) > longest_side:
        image = image.copy()
        image.thumbnail((longest_side, longest_side), Image.Resampling.BICUBIC)
    return image


def image_for_model(data: bytes, longest_side: int) -> Image.Image:
    """The file's image, upright RGB, its longer side at most `longest_side` pixels; DecodeError if unreadable."""
    return scaled_for_model(decode_image(data, draft_size=(longest_side, longest_side)), longest_side)


def data_url_of(image: Image.Image, *, quality: int = 90) -> str:
    """`data:image/jpeg;base64,...` of an image."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def image_data_url(data: bytes, longest_side: int, *, quality: int = 90) -> str:
    """`data:image/jpeg;base64,...` of the file's image, scaled as for the model."""
    return data_url_of(image_for_model(data, longest_side), quality=quality)
