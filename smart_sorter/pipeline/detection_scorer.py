"""Batches of prepared images to detections, for a detection run: the batch scorer of detection mode.

It answers what the run's batch loop asks of `BatchScorer` (`prepare`, `score`, `known_hashes`,
`cached_hashes`, `label_advice`); `score` returns each image's detections instead of label scores.
With tiles, each image is also seen through overlapping tiles at the detector's resolution, and their
boxes are mapped back to the image and merged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.detections import Detection, lowest_threshold, merge_views
from ..core.labels import LabelSet
from ..core.tiling import Box, tile_boxes
from ..errors import DecodeError, LabelError
from .decoding import decode_image
from .detector import Detector, Found
from .finding import FoundFile


class DetectionScorer:
    """Query texts set once per run; a prepared item's `.pixels` are its views: (box, model input) pairs."""

    cache = None
    cached_hashes: frozenset[str] = frozenset()  # boxes are not cached: each run looks again

    def __init__(
        self, detector: Detector, objects: LabelSet, *, threshold: float | None, tiles: int = 0, examples: bool = False
    ) -> None:
        self.detector = detector
        self.objects = objects
        self.tiles = tiles
        self.cutoff = lowest_threshold(objects, threshold)
        self.owner = objects.prompt_owner
        # several prompts of one object may find the same thing: their boxes are merged like tiles'
        self.merge = tiles > 0 or len(objects.all_prompts) > len(objects.categories) or examples
        if examples:  # the prompts are example images' paths: the objects are shown, not named
            detector.set_query_images([_example_image(Path(path)) for path in objects.all_prompts])
        else:
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


def _example_image(path: Path) -> Any:
    try:
        return decode_image(path.read_bytes(), on_white=False)
    except (OSError, DecodeError) as error:
        raise LabelError(f"The example image {str(path)!r} cannot be read ({error}); check the file.") from None


def example_objects(folder: Path) -> dict[str, list[str]]:
    """Objects shown by example images in `folder`: each image directly in it is an object named by its file
    name (`rifle.jpg`: rifle); each subfolder is an object whose images are all examples of it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LabelError(f"The examples folder {str(folder)!r} does not exist; give a folder of example images.")
    objects: dict[str, list[str]] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            images = [str(path) for path in sorted(entry.iterdir()) if path.is_file() and not path.name.startswith(".")]
            if images:
                objects[entry.name] = images
        elif entry.is_file():
            objects[entry.stem] = [str(entry)]
    if not objects:
        raise LabelError(f"The examples folder {str(folder)!r} holds no image; put one image per object in it.")
    return objects
