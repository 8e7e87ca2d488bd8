"""Images to model inputs: the model's own processor ("exact") or the same steps done cheaply ("fast").

Both work in two halves so that decoding threads do the per-image part and the model's thread
only stacks a batch: `prepare` (bytes -> array, in a worker) and `collate` (arrays -> tensor).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from .decoding import decode_image


def _as_pair(size: Any) -> tuple[str, int, int]:
    """A Hugging Face size dict as ("shortest", edge, 0) or ("exact", height, width)."""
    get = size.get if isinstance(size, dict) else lambda key, default=None: getattr(size, key, default)
    if get("shortest_edge") and not get("longest_edge"):
        return ("shortest", int(get("shortest_edge")), 0)
    if get("height") and get("width"):
        return ("exact", int(get("height")), int(get("width")))
    raise ValueError(f"unsupported size {size!r}")


def _pillow_resample(value: Any) -> int:
    """Pillow's filter for a processor's `resample`, which is a Pillow enum or a torchvision mode."""
    if value is None:
        return int(Image.Resampling.BILINEAR)
    if isinstance(value, int):
        return int(value)
    name = str(getattr(value, "value", value)).upper()
    return int(Image.Resampling[name])


@dataclass(frozen=True)
class FastPlan:
    """The resize, crop and normalisation a CLIP-style image processor applies, as plain numbers."""

    resize: tuple[str, int, int]
    crop: tuple[int, int] | None
    resample: int
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_processor(cls, processor: Any) -> FastPlan | None:
        """The plan for `processor`, or None when it does something this plan cannot copy."""
        try:
            if not getattr(processor, "do_resize", False) or getattr(processor, "do_pad", False):
                return None
            resize = _as_pair(processor.size)
            crop = None
            if getattr(processor, "do_center_crop", False):
                _, crop_h, crop_w = _as_pair(processor.crop_size)
                crop = (crop_h, crop_w)
            scale = float(processor.rescale_factor) if getattr(processor, "do_rescale", False) else 1.0
            normalize = getattr(processor, "do_normalize", False)
            mean = tuple(float(v) for v in processor.image_mean) if normalize else (0.0, 0.0, 0.0)
            std = tuple(float(v) for v in processor.image_std) if normalize else (1.0, 1.0, 1.0)
            resample = _pillow_resample(getattr(processor, "resample", None))
        except (AttributeError, TypeError, ValueError, KeyError):
            return None
        if len(mean) != 3 or len(std) != 3:
            return None
        return cls(resize, crop, resample, scale, mean, std)

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """Width and height after the resize step, rounded as transformers rounds them."""
        kind, first, second = self.resize
        if kind == "exact":
            return second, first
        short, long = (width, height) if width <= height else (height, width)
        new_long = int(first * long / short)
        return (first, new_long) if width <= height else (new_long, first)

    def draft_size(self) -> tuple[int, int]:
        """The size JPEG draft decoding must still cover, whatever the orientation.

        Twice the target: the DCT's cheap downscaling stops there and Pillow's filtered resize
        does the rest. On the telegram-32 JPEGs at 224 px this keeps the mean pixel difference
        to the model's own processor near 0.004 (0.05 when drafting down to the target itself)
        while decoding about 25% faster than decoding at full size.
        """
        kind, first, second = self.resize
        edge = first if kind == "shortest" else max(first, second)
        return (2 * edge, 2 * edge)

    def crop_box(self, width: int, height: int) -> tuple[float, float, float, float] | None:
        """The part of the source image that ends up in the centre crop, in source pixels."""
        if self.crop is None:
            return None
        crop_h, crop_w = self.crop
        new_w, new_h = self.resized_size(width, height)
        if crop_w > new_w or crop_h > new_h:
            return None
        scale_x, scale_y = new_w / width, new_h / height
        left, top = (new_w - crop_w) // 2, (new_h - crop_h) // 2
        return (left / scale_x, top / scale_y, (left + crop_w) / scale_x, (top + crop_h) / scale_y)

    def pixels(self, image: Image.Image) -> np.ndarray:
        """Resize and crop one RGB image in one step; uint8 HWC, normalised later for a whole batch.

        Resizing only the box that the centre crop keeps samples the same points as resizing the
        whole image and cropping, without ever building the whole resized image, which for a
        20000 x 3 pixel banner would be a gigabyte.
        """
        box = self.crop_box(*image.size)
        if box is not None:
            crop_h, crop_w = self.crop
            return np.asarray(image.resize((crop_w, crop_h), resample=self.resample, box=box), dtype=np.uint8)
        size = self.resized_size(*image.size)
        if image.size != size:
            image = image.resize(size, resample=self.resample)
        if self.crop is not None:  # smaller than the crop: pad with black as transformers does
            crop_h, crop_w = self.crop
            width, height = image.size
            canvas = Image.new("RGB", (crop_w, crop_h))
            canvas.paste(image, ((crop_w - width + 1) // 2, (crop_h - height + 1) // 2))
            image = canvas
        return np.asarray(image, dtype=np.uint8)

    def central_window(self, image: Image.Image) -> Image.Image:
        """For the exact mode: a very elongated image cut to the part its centre crop can see.

        A margin of several output pixels keeps the resampling filter's inputs, so the result
        matches the uncut image; ordinary images are returned as they are.
        """
        box = self.crop_box(*image.size)
        width, height = image.size
        if box is None or max(width, height) < 4 * min(width, height):
            return image
        crop_h, crop_w = self.crop
        margin_x = 8 * (box[2] - box[0]) / crop_w + 1
        margin_y = 8 * (box[3] - box[1]) / crop_h + 1
        left, top = max(0, int(box[0] - margin_x)), max(0, int(box[1] - margin_y))
        right, bottom = min(width, int(box[2] + margin_x) + 1), min(height, int(box[3] + margin_y) + 1)
        return image.crop((left, top, right, bottom))


class Preprocessor:
    """Builds `pixel_values` for a model from image file bytes."""

    def __init__(self, processor: Any, mode: str) -> None:
        self.processor = processor
        self.plan = FastPlan.from_processor(processor)
        self.mode = "fast" if mode == "fast" and self.plan is not None else "exact"

    def prepare(self, data: bytes) -> np.ndarray:
        """Decode and prepare one image (thread-safe; runs in decoding workers)."""
        if self.mode == "fast":
            return self.plan.pixels(decode_image(data, draft_size=self.plan.draft_size()))
        image = decode_image(data, on_white=False)  # transparency dropped, as the pipeline's load_image does
        if self.plan is not None:
            image = self.plan.central_window(image)
        values = self.processor(images=[image], return_tensors="np")["pixel_values"][0]
        return np.asarray(values, dtype=np.float32)

    def collate(self, arrays: list[Any]):
        """Stack prepared images into one float32 NCHW tensor (on the GPU when some were decoded there:
        `gpu.device_pixels` gives float CHW tensors, the CPU's workers uint8 HWC arrays)."""
        import torch

        if self.mode == "exact":
            return torch.from_numpy(np.stack(arrays))
        on_device = [array for array in arrays if isinstance(array, torch.Tensor)]
        if on_device:
            device = on_device[0].device
            batch = torch.stack([
                array if isinstance(array, torch.Tensor) else torch.tensor(array, device=device).permute(2, 0, 1)
                for array in arrays
            ]).to(torch.float32)  # fmt: skip
        else:
            batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).to(torch.float32)
        plan = self.plan
        mean = torch.tensor(plan.mean, device=batch.device).view(1, 3, 1, 1) / plan.scale
        std = torch.tensor(plan.std, device=batch.device).view(1, 3, 1, 1) / plan.scale
        # (x * scale - mean) / std, folded into one subtract and one divide
        return ((batch - mean) / std).contiguous()
