"""Small JPEG previews of sorted files, embedded as data URIs in the notebook and the HTML report."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from ..errors import DecodeError
from .decoding import decode_image

THUMBNAIL_PIXELS = 160


def thumbnail_jpeg(path: Path, size: int = THUMBNAIL_PIXELS) -> bytes | None:
    """The image at `path` shrunk to fit `size` x `size`, as JPEG bytes; None when it cannot be read
    (a preview is never worth a failure: the file's own row already says what is wrong with it)."""
    try:
        image = decode_image(Path(path).read_bytes(), draft_size=(size, size))
    except (OSError, DecodeError):
        return None
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def thumbnail_uri(path: Path, size: int = THUMBNAIL_PIXELS) -> str | None:
    """A `data:image/jpeg;base64,...` preview that an HTML page shows with no file access."""
    data = thumbnail_jpeg(path, size)
    return None if data is None else "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
