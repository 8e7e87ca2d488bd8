"""Images to stacks of tiles for "contains" scoring: each tile prepared as the model's own input."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.tiling import tile_boxes
from .decoding import decode_image
from .preprocessing import Preprocessor


def input_side(preprocessor: Preprocessor) -> int:
    """The side of the square the model sees, in pixels (its centre crop, else its resize edge)."""
    plan = preprocessor.plan
    if plan is not None:
        return plan.crop[0] if plan.crop else max(plan.resize[1:])
    crop = getattr(preprocessor.processor, "crop_size", None) or getattr(preprocessor.processor, "size", None) or {}
    get = crop.get if isinstance(crop, dict) else lambda key, default=None: getattr(crop, key, default)
    return int(get("height") or get("shortest_edge") or 224)


class TiledPreprocessor:
    """`prepare` gives one image's views (the whole image, then its tiles; see `core.tiling.tile_boxes`)
    stacked; `collate` puts every view of a batch into one tensor, the images' views consecutive."""

    def __init__(self, preprocessor: Preprocessor, tiles: int) -> None:
        self.preprocessor = preprocessor
        self.tiles = tiles
        self.mode = preprocessor.mode
        self.side = input_side(preprocessor)

    def prepare(self, data: bytes) -> np.ndarray:
        """Decode once, at a size that keeps `tiles` model inputs across the shorter side, and prepare each view."""
        fast = self.mode == "fast"
        reach = 2 * self.side * self.tiles  # as the whole-image draft: twice what the model sees, per tile
        image = decode_image(data, draft_size=(reach, reach)) if fast else decode_image(data, on_white=False)
        return self.views(image)

    def views(self, image: Any) -> np.ndarray:
        """A decoded image's views, stacked: the whole image, then its tiles."""
        boxes = tile_boxes(image.width, image.height, self.tiles, min_side=self.side)
        return np.stack([self._view(image.crop(box) if index else image) for index, box in enumerate(boxes)])

    def _view(self, image: Any) -> np.ndarray:
        preprocessor = self.preprocessor
        if self.mode == "fast":
            return preprocessor.plan.pixels(image)
        values = preprocessor.processor(images=[image], return_tensors="np")["pixel_values"][0]
        return np.asarray(values, dtype=np.float32)

    def collate(self, stacks: list[np.ndarray]):
        return self.preprocessor.collate([view for stack in stacks for view in stack])
