"""What only a CUDA GPU runs, as small functions whose CPU branches (the fallbacks) are tested here.

- `to_device`: a batch copied to the GPU from pinned (page-locked) memory without waiting, so the
  CPU goes on preparing the next batch while the copy runs.
- `decode_jpegs_on_gpu`: JPEGs decoded by nvJPEG through torchvision, each file or None on any error
  (no torchvision, no GPU, CMYK, too large, an oddity nvJPEG refuses), and the caller decodes those on
  the CPU. nvJPEG ignores EXIF orientation, so `upright` applies it from the file's header.
- `decoded_on_device`: the run's stream with JPEGs left as bytes by the decoding workers (`JpegBytes`)
  decoded a batch at a time on the model's device, resized and cropped there (`device_pixels`), the
  files the GPU gives back decoded by the CPU's preparation in threads.
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any

from ..errors import DecodeError

JPEG_MAGIC = b"\xff\xd8\xff"
ELONGATED = 4  # images this many times longer than wide are cut to their crop on the CPU (FastPlan.pixels)

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

    if torch.device(device).type != "cuda" or batch.device.type != "cpu":  # elsewhere, or decoded there
        return batch.to(device=device, dtype=dtype)
    return pinned(batch).to(device=device, non_blocking=True).to(dtype=dtype)


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


def jpeg_header(data: bytes) -> int | None:
    """The EXIF orientation of a JPEG the GPU may decode: RGB or greyscale, within Pillow's pixel limit
    (the decompression-bomb guard of the CPU path). None for any other file: the CPU decodes it or says
    what is wrong with it."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if image.format != "JPEG" or image.mode not in ("RGB", "L") or width * height > Image.MAX_IMAGE_PIXELS:
                return None
            value = image.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - the CPU decoder reports what is wrong with the file
        return None
    return value if value in _ORIENTATIONS else 1


def _decode_jpegs(datas: list[bytes], device: Any) -> list[Any]:
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    encoded = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for data in datas]
    return decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)


def decode_jpegs_on_gpu(datas: list[bytes], device: Any) -> list[Any | None]:
    """JPEG files' bytes decoded on `device` by nvJPEG (torchvision) as upright RGB uint8 CHW tensors, in one
    batch; a file the GPU cannot decode is None (the caller decodes it on the CPU), and when the batch fails
    each file is tried alone, so that one odd file does not send the others to the CPU."""
    found: list[Any | None] = [None] * len(datas)
    if importlib.util.find_spec("torchvision") is None:
        return found
    orientations = [jpeg_header(data) for data in datas]
    usable = [index for index, orientation in enumerate(orientations) if orientation is not None]
    try:
        decoded = _decode_jpegs([datas[index] for index in usable], device) if usable else []
    except Exception:  # noqa: BLE001 - tried file by file below
        decoded = [_decode_alone(datas[index], device) for index in usable]
    for index, pixels in zip(usable, decoded):
        found[index] = None if pixels is None else upright(pixels, orientations[index])
    return found


def _decode_alone(data: bytes, device: Any) -> Any | None:
    try:
        return _decode_jpegs([data], device)[0]
    except Exception:  # noqa: BLE001 - any failure of the GPU path falls back to the CPU, which explains itself
        return None


def gpu_decoding_device(model_device: Any) -> str | None:
    """Where a run decodes JPEGs by default: on the model's CUDA device when torchvision is installed, else
    nowhere but the CPU's decoding threads (None)."""
    device = str(model_device)
    if device.startswith("cuda") and importlib.util.find_spec("torchvision") is not None:
        return device
    return None


@dataclass(frozen=True)
class JpegBytes:
    """A JPEG file's bytes, left by a decoding worker for the model's thread to decode on the GPU in a batch."""

    data: bytes


def leave_jpegs(prepare: Callable[[bytes], Any], data: bytes) -> Any:
    """A decoding worker's step when JPEGs are decoded on the GPU: a JPEG kept as bytes, any other file prepared."""
    return JpegBytes(data) if data[:3] == JPEG_MAGIC else prepare(data)


_MODES = {0: "nearest", 2: "bilinear", 3: "bicubic"}  # Pillow's filters torch can interpolate with


def _centred(image: Any, size: int, wanted: int, axis: int) -> Any:
    """`image` cut or padded with black along `axis` to `wanted`, centred as FastPlan.pixels centres it."""
    import torch

    if size >= wanted:
        start = (size - wanted) // 2
        return image.narrow(axis, start, wanted)
    before = (wanted - size + 1) // 2
    shape = list(image.shape)
    shape[axis] = wanted
    canvas = torch.zeros(shape, dtype=image.dtype, device=image.device)
    canvas.narrow(axis, before, size).copy_(image)
    return canvas


def device_pixels(pixels: Any, plan: Any) -> Any:
    """An upright RGB uint8 CHW tensor resized and centre-cropped as `plan` (a FastPlan) says, on its own
    device: float CHW with values 0-255, normalised with the batch (`Preprocessor.collate`)."""
    import torch

    height, width = pixels.shape[-2:]
    new_width, new_height = plan.resized_size(width, height)
    image = pixels[None].float()
    if (new_height, new_width) != (height, width):
        mode = _MODES.get(plan.resample, "bicubic")
        options = {"antialias": True, "align_corners": False} if mode != "nearest" else {}
        image = torch.nn.functional.interpolate(image, size=(new_height, new_width), mode=mode, **options)
        image = image.clamp_(0, 255).round_()  # as Pillow's 8-bit result
    if plan.crop is not None:
        crop_height, crop_width = plan.crop
        image = _centred(_centred(image, new_height, crop_height, 2), new_width, crop_width, 3)
    return image[0].contiguous()


def decoded_on_device(
    items: Iterator[Any],
    prepare: Callable[[bytes], Any],
    plan: Any,
    device: Any,
    *,
    size: int,
    workers: int,
) -> Iterator[Any]:
    """The run's prepared files in order, those left as `JpegBytes` decoded `size` at a time on `device` and
    resized there; the files the GPU gives back (None) and very elongated images are prepared by `prepare`
    (the CPU's decoding) in `workers` threads, and one that cannot be decoded becomes the file's error."""
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="smart-sorter-decode") as cpu:
            while batch := list(islice(items, size)):
                waiting = [item for item in batch if isinstance(item.pixels, JpegBytes)]
                decoded = decode_jpegs_on_gpu([item.pixels.data for item in waiting], device)
                on_cpu = []
                for item, pixels in zip(waiting, decoded):
                    if pixels is None or max(pixels.shape[-2:]) >= ELONGATED * min(pixels.shape[-2:]):
                        on_cpu.append((item, cpu.submit(prepare, item.pixels.data)))
                    else:
                        item.pixels = device_pixels(pixels, plan)
                for item, future in on_cpu:
                    item.pixels, item.error = _prepared(future)
                yield from batch
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


def _prepared(future: Any) -> tuple[Any, str]:
    try:
        return future.result(), ""
    except DecodeError as error:
        return None, str(error)
    except MemoryError:
        return None, "image too large for the memory available"
