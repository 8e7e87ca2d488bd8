"""Small JPEG previews of sorted files, embedded as data URIs in the notebook and the HTML report."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import DecodeError
from .decoding import decode_image

THUMBNAIL_PIXELS = 160
# distinct on photos and for most colour-blind readers (Okabe-Ito)
BOX_COLOURS = ((230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0))


def thumbnail_jpeg(path: Path, size: int = THUMBNAIL_PIXELS, boxes: Sequence[Any] = ()) -> bytes | None:
    """The image at `path` shrunk to fit `size` x `size`, as JPEG bytes; None when it cannot be read
    (a preview is never worth a failure: the file's own row already says what is wrong with it).
    `boxes` (detections: label, score, box in pixels of the image) are drawn on it."""
    try:  # with boxes, decoded whole: they are in pixels of the full image
        image = decode_image(Path(path).read_bytes(), draft_size=None if boxes else (size, size))
    except (OSError, DecodeError):
        return None
    full_width = image.width
    image.thumbnail((size, size))
    if boxes:
        draw_boxes(image, boxes, image.width / full_width)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def draw_boxes(image: Any, boxes: Sequence[Any], scale: float = 1.0) -> None:
    """Each detection's box on `image` (PIL, changed in place), in one colour per object, with its label and
    score; boxes are in pixels of the original image, `scale` times that of `image`."""
    from PIL import ImageDraw

    draw = ImageDraw.Draw(image)
    colours: dict[str, tuple[int, int, int]] = {}
    for found in boxes:
        colour = colours.setdefault(found["label"], BOX_COLOURS[len(colours) % len(BOX_COLOURS)])
        left, top, right, bottom = (float(v) * scale for v in found["box"])
        draw.rectangle((left, top, max(left, right), max(top, bottom)), outline=colour, width=2)
        draw.text((left + 3, top + 1), f"{found['label']} {float(found['score']):.2f}", fill=colour)


def thumbnail_uri(path: Path, size: int = THUMBNAIL_PIXELS, boxes: Sequence[Any] = ()) -> str | None:
    """A `data:image/jpeg;base64,...` preview that an HTML page shows with no file access."""
    data = thumbnail_jpeg(path, size, boxes)
    return None if data is None else "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
