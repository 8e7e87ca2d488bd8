"""Images and videos through one run: read ahead in order, scored in the same batches, one row per file.

Images take the reading pipeline as before. Videos, which may be gigabytes, are hashed streaming and
decoded from the file itself (opened as safely as an image: no symlink swapped in, no FIFO) in their
own worker; a video named like an image is met by the image reader and sampled from its bytes. Each
sampled frame is a model input like an image, cached by the video's hash and the frame's time, and a
video's scores are its frames' combined (`core.videos`).
"""

from __future__ import annotations

import io
import os
from collections import deque
from collections.abc import Iterable, Iterator, Set
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..core.labels import LabelSet
from ..core.rows import batch_rows
from ..core.scoring import Scores
from ..core.videos import MediaScores, aggregate, how_to_combine, video_fields
from ..errors import DecodeError
from ..options import SortOptions
from .batch_scorer import BatchScorer
from .encoder import PipelineClassifier
from .finding import FoundFile
from .reading import Prepared, _open, _yield_to_model, prepared_stream, read_file
from .tiles import TiledPreprocessor
from .video import (
    SNIFF_BYTES,
    VIDEO_EXTRA,
    Sampling,
    VideoFrames,
    frame_key,
    sample_video,
    sniff_video_format,
    video_support,
)

VIDEOS_AHEAD = 2  # videos sampled ahead of the model per worker, each holding its frames (a few MB)


@dataclass
class _FrameInput:
    """One sampled frame as the batch scorer takes it: its cache name, model input, and whether cached."""

    sha256: str
    pixels: Any
    cached: bool


def sampling_of(options: SortOptions) -> Sampling:
    return Sampling(frames=options.video_frames, every=options.video_every, keyframes=options.video_keyframes)


class MediaScorer:
    """Scores batches of images and videos for one run through one BatchScorer."""

    def __init__(self, scorer: BatchScorer, options: SortOptions) -> None:
        self.scorer = scorer
        self.options = options
        self.sampling = sampling_of(options)
        self.how = how_to_combine(options.video_score, options.multi_label)
        self.index: dict[str, tuple[float | None, tuple[float, ...]]] = {}
        cache = scorer.cache
        if cache is not None:  # videos whose every sampled frame has an embedding for this model
            known = cache.videos(self.sampling.key)
            self.index = {
                sha: entry
                for sha, entry in known.items()
                if all(frame_key(sha, moment) in scorer.cached_hashes for moment in entry[1])
            }
        self.cached = scorer.cached_hashes | frozenset(self.index)
        self.short_side = None
        preprocessor = None if isinstance(scorer.encoder, PipelineClassifier) else scorer.preprocessor
        # a frame to be tiled is decoded whole
        if preprocessor is not None and preprocessor.mode == "fast" and not isinstance(preprocessor, TiledPreprocessor):
            self.short_side = preprocessor.plan.draft_size()[0]

    # Preparing -----------------------------------------------------------------------------------
    def prepare_frame(self, image: Any) -> Any:
        """A frame (an upright RGB Pillow image) as the model's input, as an image would be."""
        if isinstance(self.scorer.encoder, PipelineClassifier):
            return image
        preprocessor = self.scorer.preprocessor
        if isinstance(preprocessor, TiledPreprocessor):
            return preprocessor.views(image)
        if preprocessor.mode == "fast":
            return preprocessor.plan.pixels(image)
        image = preprocessor.plan.central_window(image) if preprocessor.plan is not None else image
        return preprocessor.processor(images=[image], return_tensors="np")["pixel_values"][0]

    def prepare(self, data: bytes) -> Any:
        """An image file's bytes as the model's input; a video named like an image is sampled from them."""
        if sniff_video_format(data[:SNIFF_BYTES]):
            if not video_support():
                raise DecodeError(f"a video named like an image; sorting videos needs the video extra: {VIDEO_EXTRA}")
            return sample_video(io.BytesIO(data), self.sampling, self.prepare_frame, short_side=self.short_side)
        return self.scorer.prepare(data)

    def _cached_video(self, found: FoundFile, sha256: str, stamp: tuple[int, int] | None = None) -> Prepared:
        duration, times = self.index[sha256]
        return Prepared(found, sha256, pixels=VideoFrames(times, duration), cached=True, stamp=stamp)

    def _read_video(self, found: FoundFile, known: str | None) -> Prepared:
        """A video hashed (streamed: bounded memory whatever its size), then sampled from its file."""
        if known in self.index:
            return self._cached_video(found, known)
        try:
            bytes_read = read_file(found, max_bytes=0)
        except DecodeError as error:
            return Prepared(found, "", error=str(error))
        sha256 = bytes_read.sha256
        if sha256 in self.index:
            return self._cached_video(found, sha256, bytes_read.stamp)
        if bytes_read.size == 0:
            return Prepared(found, sha256, error="empty file (0 bytes)")
        try:
            with os.fdopen(_open(found), "rb") as handle:
                frames = sample_video(handle, self.sampling, self.prepare_frame, short_side=self.short_side)
        except DecodeError as error:
            return Prepared(found, sha256, error=str(error))
        except MemoryError:
            return Prepared(found, sha256, error="video too large for the memory available")
        return Prepared(found, sha256, pixels=frames, stamp=bytes_read.stamp)

    def _videos(self, videos: list[FoundFile], known: dict[str, str], workers: int) -> Iterator[Prepared]:
        """Videos sampled in `workers` threads (as many as decode images: on a GPU, decoding is what waits)."""
        with ThreadPoolExecutor(workers, thread_name_prefix="smart-sorter-video", initializer=_yield_to_model) as pool:
            pending: deque[Future[Prepared]] = deque()
            for found in videos:
                pending.append(pool.submit(self._read_video, found, known.get(found.relative)))
                if len(pending) > VIDEOS_AHEAD * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def known_hashes(self, files: list[FoundFile]) -> dict[str, str]:
        """Files unchanged since they were hashed whose embeddings (a video's: every frame's) are cached."""
        cache = self.scorer.cache
        if cache is None:
            return {}
        known = {found.relative: cache.known_hash(found.path) for found in files}
        return {relative: sha for relative, sha in known.items() if sha in self.cached}

    def stream(
        self,
        files: list[FoundFile],
        *,
        workers: int,
        lookahead: int,
        max_bytes: int,
        distrusted: Set[str] = frozenset(),
    ) -> Iterator[Prepared]:
        """Every file prepared, in the order of `files`: images and videos read ahead side by side. Files named in
        `distrusted` (tried again after an error) are read and hashed anew, never taken from the cache's memory."""
        known = self.known_hashes([found for found in files if found.relative not in distrusted])
        images = prepared_stream(
            [found for found in files if found.kind != "video"], self.prepare, workers=workers, lookahead=lookahead,
            known_hashes=known, cached=self.cached, max_bytes=max_bytes,
        )  # fmt: skip
        videos = self._videos([found for found in files if found.kind == "video"], known, workers)
        try:
            for found in files:
                item = next(videos if found.kind == "video" else images)
                if item.cached and item.sha256 in self.index and not isinstance(item.pixels, VideoFrames):
                    duration, times = self.index[item.sha256]  # a video named like an image, cached
                    item.pixels = VideoFrames(times, duration)
                yield item
        finally:
            images.close()
            videos.close()

    # Scoring -------------------------------------------------------------------------------------
    def score(self, items: list[Prepared]) -> Scores:
        """One row of scores per file; a video's from its frames (MediaScores keeps them)."""
        videos = [item.pixels if isinstance(item.pixels, VideoFrames) else None for item in items]
        if not any(videos):
            return self.scorer.score(items)
        inputs: list[Any] = []
        spans = []
        for item, video in zip(items, videos):
            if video is None:
                spans.append((len(inputs), 1))
                inputs.append(item)
                continue
            spans.append((len(inputs), len(video.times)))
            pixels = video.pixels or [None] * len(video.times)
            inputs += [
                _FrameInput(frame_key(item.sha256, moment), frame, video.pixels is None)
                for moment, frame in zip(video.times, pixels)
            ]
        frame_scores = self.scorer.score_inputs(inputs)
        self.scorer.remember_hashes(items)
        cache = self.scorer.cache
        if cache is not None:
            fresh = {item.sha256: (v.duration, v.times) for item, v in zip(items, videos) if v and v.pixels is not None}
            cache.put_videos(self.sampling.key, fresh)
        for video in videos:
            if video is not None:
                video.pixels = None  # scored: the frames need not be held while the batch is placed
        return aggregate(frame_scores, spans, [(v.times, v.duration) if v else None for v in videos], self.how)

    def rows(self, chunk: list[Prepared], scores: Scores | None, labels: LabelSet) -> list[dict[str, Any]]:
        """The rows of one batch (`scores` those of its files without an error), videos with their columns."""
        options = self.options
        entries = [(item.found.relative, item.sha256, item.error) for item in chunk]
        rows = batch_rows(entries, scores, labels, top_k=options.top_k, threshold=options.threshold,
                          margin=options.margin, multi_label=options.multi_label)  # fmt: skip
        series = iter(scores.series if isinstance(scores, MediaScores) else ())
        for item, row in zip(chunk, rows):
            frames = next(series, None) if not item.error else None
            if item.found.kind == "video" or isinstance(item.pixels, VideoFrames):
                row["kind"] = "video"
                if frames is not None:
                    row.update(video_fields(row, frames, labels, multi_label=options.multi_label))
        return rows


def frame_chunks(items: Iterable[Prepared], size: int) -> Iterator[list[Prepared]]:
    """Batches of about `size` model inputs: a video counts as its frames, so batches stay the model's size."""
    chunk: list[Prepared] = []
    weight = 0
    for item in items:
        chunk.append(item)
        weight += len(item.pixels.times) if isinstance(item.pixels, VideoFrames) else 1
        if weight >= size:
            yield chunk
            chunk, weight = [], 0
    if chunk:
        yield chunk
