"""Batches of prepared images to detections, for a detection run: the batch scorer of detection mode.

It answers what the run's batch loop asks of `BatchScorer` (`prepare`, `score`, `known_hashes`,
`cached_hashes`, `label_advice`); `score` returns each image's detections instead of label scores.
With tiles, each image is also seen through overlapping tiles at the detector's resolution, and their
boxes are mapped back to the image and merged.
"""

from __future__ import annotations

from typing import Any

from ..core.detections import Detection, lowest_threshold, merge_views
from ..core.labels import LabelSet
from ..core.tiling import Box, tile_boxes
from .decoding import decode_image
from .detector import Detector, Found
from .finding import FoundFile


class DetectionScorer:
    """Query texts set once per run; a prepared item's `.pixels` are its views: (box, model input) pairs."""

    cache = None
    cached_hashes: frozenset[str] = frozenset()  # boxes are not cached: each run looks again

    def __init__(self, detector: Detector, objects: LabelSet, *, threshold: float | None, tiles: int = 0) -> None:
        self.detector = detector
        self.objects = objects
        self.tiles = tiles
        self.cutoff = lowest_threshold(objects, threshold)
        self.owner = objects.prompt_owner
        # several prompts of one object may find the same thing: their boxes are merged like tiles'
        self.merge = tiles > 0 or len(objects.all_prompts) > len(objects.categories)
        detector.set_queries(list(objects.all_prompts))

    def prepare(self, data: bytes) -> list[tuple[Box, Any]]:
        """Decode (transparency dropped, as the pipeline's `load_image`) and prepare each view."""
        image = decode_image(data, on_white=False)
        boxes = tile_boxes(image.width, image.height, self.tiles, min_side=self.detector.input_side)
        return [(box, self.detector.prepare(image.crop(box) if index else image)) for index, box in enumerate(boxes)]

    def known_hashes(self, files: list[FoundFile]) -> dict[str, str]:
        return {}

    def label_advice(self, categories: tuple[str, ...]) -> list[str]:
        return []

    def score(self, items: list[Any]) -> list[list[Detection]]:
        views = [view for item in items for view in item.pixels]
        found = iter(self.detector.detect([model_input for _, model_input in views], self.cutoff))
        results = []
        for item in items:
            per_view = [self._named(next(found)) for _ in item.pixels]
            boxes = [box for box, _ in item.pixels]
            results.append(merge_views(per_view, boxes, merge=self.merge))
        return results

    def _named(self, found: list[Found]) -> list[Detection]:
        names = self.objects.categories
        return [{"label": names[self.owner[query]], "score": score, "box": box} for query, score, box in found]
