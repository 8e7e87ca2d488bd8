"""Images and videos through a detection run: a video is searched in the frames sorting samples from it.

The reading, hashing and sampling are those of sorting (`media.MediaScorer`, called, not changed); each
sampled frame is searched as an image is (its tiles too), its image side cached under the frame's name
where the detector allows (`detection_scorer`). A video's row gathers its frames' boxes, each with its
frame's time (`core.detections.video_detection_row`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.detections import Detection, detection_row, video_detection_row
from ..core.labels import LabelSet
from ..core.rows import make_row
from ..options import SortOptions
from .detection_scorer import DetectionScorer
from .media import MediaScorer
from .reading import Prepared
from .video import VideoFrames, frame_key


@dataclass
class _Frame:
    """A video's sampled frame as the detection scorer takes it: its cache name, views, and whether cached."""

    sha256: str
    pixels: Any
    cached: bool


@dataclass
class _VideoFound:
    """What was found in each sampled frame of one video."""

    times: tuple[float, ...]
    duration: float | None
    per_frame: list[list[Detection]]


class DetectionMedia(MediaScorer):
    """The media stream of sorting, with frames prepared, searched and turned into rows as detection does."""

    scorer: DetectionScorer  # type: ignore[assignment]

    def __init__(self, scorer: DetectionScorer, options: SortOptions) -> None:
        super().__init__(scorer, options)  # type: ignore[arg-type]

    def prepare_frame(self, image: Any) -> Any:
        return self.scorer.views(image)

    def score(self, items: list[Prepared]) -> list[Any]:  # type: ignore[override]
        """Per file its detections (a list), or for a video what was found in each of its frames."""
        inputs: list[Any] = []
        for item in items:
            video = item.pixels if isinstance(item.pixels, VideoFrames) else None
            if video is None:
                inputs.append(item)
                continue
            frames = video.pixels or [None] * len(video.times)
            inputs += [_Frame(frame_key(item.sha256, moment), views, video.pixels is None)
                       for moment, views in zip(video.times, frames)]  # fmt: skip
        found = iter(self.scorer.score(inputs))
        results: list[Any] = []
        fresh = {}
        for item in items:
            video = item.pixels if isinstance(item.pixels, VideoFrames) else None
            if video is None:
                results.append(next(found))
                continue
            results.append(_VideoFound(video.times, video.duration, [next(found) for _ in video.times]))
            if video.pixels is not None:
                fresh[item.sha256] = (video.duration, video.times)
            video.pixels = None  # searched: the frames need not be held while the batch is placed
        cache = self.scorer.cache
        if cache is not None:  # a video's hash remembered with its size and time, as an image's is
            cache.remember_hashes([(item.found.path, item.sha256, item.stamp) for item in items
                                   if item.stamp and isinstance(item.pixels, VideoFrames)])  # fmt: skip
            if fresh:
                cache.put_videos(self.sampling.key, fresh)
        return results

    def rows(self, chunk: list[Prepared], scores: Any, labels: LabelSet) -> list[dict[str, Any]]:
        """The rows of one batch (`scores` those of its files without an error), a video's with its frames."""
        options = self.options
        found = iter(scores or ())
        rows = []
        for item in chunk:
            relative = item.found.relative
            if item.error:
                row = make_row(relative, item.sha256, status="error", error=item.error)
                row["kind"] = "video" if item.found.kind == "video" else "image"
            else:
                result = next(found)
                row = (
                    video_detection_row(relative, item.sha256, list(zip(result.times, result.per_frame)),
                                        result.duration, labels, threshold=options.threshold, top_k=options.top_k)
                    if isinstance(result, _VideoFound)
                    else detection_row(relative, item.sha256, result, labels, threshold=options.threshold,
                                       top_k=options.top_k)
                )  # fmt: skip
            rows.append(row)
        return rows
