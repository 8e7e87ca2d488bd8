"""What only a CUDA GPU runs, as small functions whose CPU branches (the fallbacks) are tested here.

- `to_device`: a batch copied to the GPU from pinned (page-locked) memory without waiting, so the
  CPU goes on preparing the next batch while the copy runs.
- `decode_jpegs_on_gpu`: JPEGs decoded by nvJPEG through torchvision, or None on any error (no
  torchvision, no GPU, CMYK, an oddity nvJPEG refuses), and the caller decodes them on the CPU.
  nvJPEG ignores EXIF orientation, so `upright` applies it from the file's header.
"""

from __future__ import annotations

import io
from typing import Any

# EXIF orientation -> (transpose height and width, flip rows, flip columns), applied in that order;
# the eight values of the EXIF standard (1 is upright), as Pillow's ImageOps.exif_transpose reads them.
_ORIENTATIONS = {
    1: (False, False, False),
    2: (False, False, True),
    3: (False, True, True),
    4: (False, True, False),
    5: (True, False, False),
    6: (True, False, True),
    7: (True, True, True),
    8: (True, True, False),
}


def pinned(batch: Any) -> Any:
    """The batch in page-locked memory, or as it is where none can be had (no CUDA driver, a full quota)."""
    try:
        return batch.pin_memory()
    except RuntimeError:
        return batch


def to_device(batch: Any, device: Any, dtype: Any) -> Any:
    """The batch on `device` in `dtype`: on CUDA from pinned memory without waiting (the model's work on
    the GPU is queued after the copy, in order), elsewhere a plain copy."""
    import torch

    if torch.device(device).type != "cuda":
        return batch.to(device=device, dtype=dtype)
    return pinned(batch).to(device=device, non_blocking=True).to(dtype=dtype)


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation in an image file's header (1, upright, when there is none or it is unreadable)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            value = image.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - the CPU decoder reports what is wrong with the file
        return 1
    return value if value in _ORIENTATIONS else 1


def upright(pixels: Any, orientation: int) -> Any:
    """A CHW image tensor turned as its EXIF orientation says, as Pillow's exif_transpose turns it."""
    transpose, flip_rows, flip_columns = _ORIENTATIONS.get(orientation, _ORIENTATIONS[1])
    if transpose:
        pixels = pixels.transpose(-2, -1)
    if flip_rows:
        pixels = pixels.flip(-2)
    if flip_columns:
        pixels = pixels.flip(-1)
    return pixels


def decode_jpegs_on_gpu(datas: list[bytes], device: Any) -> list[Any] | None:
    """JPEG files' bytes decoded on `device` by nvJPEG (torchvision), upright RGB uint8 CHW tensors, or
    None on any error, so that the caller decodes the batch on the CPU instead."""
    try:
        import torch
        from torchvision.io import ImageReadMode, decode_jpeg

        encoded = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for data in datas]
        decoded = decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)
        return [upright(pixels, exif_orientation(data)) for pixels, data in zip(decoded, datas)]
    except Exception:  # noqa: BLE001 - any failure of the GPU path falls back to the CPU, which explains itself
        return None
