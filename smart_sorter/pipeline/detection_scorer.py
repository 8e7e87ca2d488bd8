"""Batches of prepared images to detections, for a detection run: the batch scorer of detection mode.

It answers what the run's batch loop asks of `BatchScorer` (`prepare`, `score`, `known_hashes`,
`cached_hashes`, `label_advice`); `score` returns each image's detections instead of label scores.
With tiles, each image is also seen through overlapping tiles at the detector's resolution, and their
boxes are mapped back to the image and merged.

The embedding cache applies to OWL models, whose query texts meet the image only in the class head's last
step: what the image tower and the heads compute from an image alone (`Detector.image_side`) is kept per
file, keyed by the model, its revision and precision, the preprocessing and the tiling, so a second search
of the same images for other objects skips the image tower. Grounding DINO and the other detectors that
read image and text together have nothing query-free to keep.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..core.detections import Detection, lowest_threshold, merge_views
from ..core.labels import LabelSet
from ..core.tiling import Box, tile_boxes
from ..errors import DecodeError, LabelError
from .decoding import decode_image
from .detector import Detector, Found
from .embedding_cache import EmbeddingCache, model_key
from .finding import FoundFile


class DetectionScorer:
    """Query texts set once per run; a prepared item's `.pixels` are its views: (box, model input) pairs
    (None when its image side is cached: then it was not decoded)."""

    def __init__(
        self,
        detector: Detector,
        objects: LabelSet,
        *,
        threshold: float | None,
        tiles: int = 0,
        examples: bool = False,
        cache: EmbeddingCache | None = None,
        preprocess: str = "exact",
        batch_size: int = 8,
    ) -> None:
        self.detector = detector
        # views through the model at once: a batch of images with tiles is many views (32 images at 3x3 tiles
        # are 32 x 13 OWLv2 inputs of 960 px), sent `batch_size` at a time like images without tiles
        self.views_per_pass = max(1, batch_size)
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
        # "fast": OWLv2's preprocessing computed faster, with the processor's pixels within 1e-6 (where it applies)
        self.preprocess = "fast" if preprocess == "fast" and detector.fast_pixels is not None else "exact"
        self.cache = cache if detector.owl else None  # others read image and text together: nothing to keep
        self.key = model_key(detector.describe(), self.preprocess) + "/detect" + (f"/tiles{tiles}" if tiles else "")
        self.cached_hashes = self.cache.hashes(self.key) if self.cache is not None else frozenset()

    preprocessor = None  # what `MediaScorer` asks of a scorer: frames are decoded whole, boxes are in their pixels

    @property
    def encoder(self) -> Detector:
        return self.detector

    def prepare(self, data: bytes) -> list[tuple[Box, Any]]:
        """Decode (transparency dropped, as the pipeline's `load_image`) and prepare each view."""
        return self.views(decode_image(data, on_white=False))

    def views(self, image: Any) -> list[tuple[Box, Any]]:
        """A decoded image (or a video's frame) as its views: (box, model input), the whole image first."""
        boxes = tile_boxes(image.width, image.height, self.tiles, min_side=self.detector.input_side)
        return [(box, self.detector.prepare(image.crop(box) if index else image, self.preprocess))
                for index, box in enumerate(boxes)]  # fmt: skip

    def known_hashes(self, files: list[FoundFile]) -> dict[str, str]:
        """Files unchanged since they were hashed, whose image side is cached: they need no reading."""
        if self.cache is None:
            return {}
        known = {found.relative: self.cache.known_hash(found.path) for found in files}
        return {relative: sha for relative, sha in known.items() if sha in self.cached_hashes}

    def label_advice(self, categories: tuple[str, ...]) -> list[str]:
        return []

    def score(self, items: list[Any]) -> list[list[Detection]]:
        if self.detector.owl:
            per_item = self._views_from_image_side(items)
        else:
            views = [view for item in items for view in item.pixels]
            found = iter(self._in_passes([model_input for _, model_input in views], self._detect))
            per_item = [([box for box, _ in item.pixels], [next(found) for _ in item.pixels]) for item in items]
        return [merge_views([self._named(found) for found in per_view], boxes, merge=self.merge)
                for boxes, per_view in per_item]  # fmt: skip

    def _views_from_image_side(self, items: list[Any]) -> list[tuple[list[Box], list[list[Found]]]]:
        """Each item's view boxes and what was found in each view, from image sides computed now or cached."""
        sides = self._image_sides(items)
        views, flat = [], []
        for item in items:
            width, height = (int(v) for v in sides[item.sha256][:2])
            boxes = tile_boxes(width, height, self.tiles, min_side=self.detector.input_side)
            views.append(boxes)
            flat.append(sides[item.sha256][2:].reshape(len(boxes), -1, self._side_width))
        sizes = [(bottom - top, right - left) for boxes in views for left, top, right, bottom in boxes]
        per_view = [side for sides_of_item in flat for side in sides_of_item]
        found = iter(self._in_passes(list(zip(per_view, sizes)), self._found_in))
        return [(boxes, [next(found) for _ in boxes]) for boxes in views]

    def _in_passes(self, values: list[Any], run: Any) -> list[Any]:
        """`run` over `values` (one per view) `views_per_pass` at a time, the results in order."""
        step = self.views_per_pass
        return [result for start in range(0, len(values), step) for result in run(values[start : start + step])]

    def _detect(self, inputs: list[Any]) -> list[list[Found]]:
        return self.detector.detect(inputs, self.cutoff)

    def _found_in(self, sides_and_sizes: list[tuple[np.ndarray, tuple[int, int]]]) -> list[list[Found]]:
        sides, sizes = zip(*sides_and_sizes)
        return self.detector.found_in(np.stack(sides), list(sizes), self.cutoff)

    def _image_side_of(self, views: list[Any]) -> list[np.ndarray]:
        return list(self.detector.image_side(np.stack(views)))

    @property
    def _side_width(self) -> int:
        return int(self.detector.network.class_head.dense0.out_features) + 6

    def _image_sides(self, items: list[Any]) -> dict[str, np.ndarray]:
        """Each item's image side as one flat float32 vector: its width and height, then every view's patches
        (`Detector.image_side`); computed for the items not cached (and cached), read for the others."""
        fresh = [item for item in items if not item.cached]
        sides: dict[str, np.ndarray] = {}
        if fresh:
            inputs = [values for item in fresh for _, (values, _) in item.pixels]
            computed = self._in_passes(inputs, self._image_side_of)
            ends = np.cumsum([len(item.pixels) for item in fresh])
            for item, views in zip(fresh, np.split(np.stack(computed), ends[:-1])):
                width, height = item.pixels[0][0][2:]  # the first view is the whole image
                sides[item.sha256] = np.concatenate([[width, height], views.ravel()]).astype(np.float32)
        if self.cache is not None:
            if fresh:
                self.cache.put(self.key, {item.sha256: sides[item.sha256] for item in fresh})
            # each file read now remembered with the size and time it had, so that it need not be read next time
            stamped = [(item.found.path, item.sha256, item.stamp) for item in items if getattr(item, "stamp", None)]
            self.cache.remember_hashes(stamped)  # a video's frames have no stamp: the video has
            cached = [item.sha256 for item in items if item.cached]
            sides.update(self.cache.get(self.key, cached) if cached else {})
        return sides

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
