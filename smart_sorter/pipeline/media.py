"""Images and videos through one run: read ahead in order, scored in the same batches, one row per file.

Images take the reading pipeline as before. Videos, which may be gigabytes, are hashed streaming and
decoded from the file itself (opened as safely as an image: no symlink swapped in, no FIFO) in their
own worker; a video named like an image is met by the image reader and sampled from its bytes. Each
sampled frame is a model input like an image, cached by the video's hash and the frame's time, and a
video's scores are its frames' combined (`core.videos`).

With `animated="frames"`, an animated GIF, WebP or PNG is sampled as a video is (`pipeline.animation`)
and cached the same way, under its own sampling name. A still image's embedding is named by its hash
alone, and a cache filled by a run that took animations' first frames holds such embeddings for
animations too: in that mode, a GIF, WebP or PNG file is taken from the cache only once a run of the
same mode has seen that it holds one frame (the cache's `stills`), or as the frames it was sampled into.
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
from ..options import MEGABYTE, SortOptions
from .animation import ANIMATED_FORMATS, ANIMATED_SUFFIXES, sample_animation
from .batch_scorer import BatchScorer
from .encoder import PipelineClassifier
from .finding import IMAGE_EXTENSIONS, FoundFile, sniff_image_format
from .reading import MAX_IMAGE_BYTES, Prepared, _open, _yield_to_model, prepared_stream, read_file
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
STILLS = "stills"  # the cache's name for GIF/WebP/PNG files seen to hold a single frame (animated="frames")


@dataclass
class _FrameInput:
    """One sampled frame as the batch scorer takes it: its cache name, model input, and whether cached."""

    sha256: str
    pixels: Any
    cached: bool


def sampling_of(options: SortOptions) -> Sampling:
    return Sampling(frames=options.video_frames, every=options.video_every, keyframes=options.video_keyframes)


def may_be_animated(found: FoundFile) -> bool:
    """Whether an image file may hold an animation: named .gif/.webp/.png/.apng, or found by its content."""
    suffix = found.path.suffix.lower()
    return found.kind != "video" and (suffix in ANIMATED_SUFFIXES or suffix not in IMAGE_EXTENSIONS)


@dataclass
class CacheCounts:
    """Model inputs taken from the embedding cache (hits) or embedded by this run (misses): images and video frames."""

    image_hits: int = 0
    image_misses: int = 0
    frame_hits: int = 0
    frame_misses: int = 0

    def as_record(self) -> dict[str, dict[str, int]]:
        return {
            "images": {"hits": self.image_hits, "misses": self.image_misses},
            "frames": {"hits": self.frame_hits, "misses": self.frame_misses},
        }


class MediaScorer:
    """Scores batches of images and videos for one run through one BatchScorer."""

    def __init__(self, scorer: BatchScorer, options: SortOptions) -> None:
        self.scorer = scorer
        self.options = options
        self.sampling = sampling_of(options)
        self.how = how_to_combine(options.video_score, options.multi_label)
        self.animations = options.animated == "frames"  # animated images sampled as videos
        self.animation_key = f"{self.sampling.key};animation"  # their sampling's name in the cache
        self.index: dict[str, tuple[float | None, tuple[float, ...]]] = {}
        self.counts = CacheCounts()
        self.max_bytes = MAX_IMAGE_BYTES
        stills: frozenset[str] = frozenset()
        cache = scorer.cache
        if cache is not None:  # videos (and animations) whose every sampled frame has an embedding for this model
            known = cache.videos(self.sampling.key)
            if self.animations:
                known.update(cache.videos(self.animation_key))
                stills = frozenset(cache.videos(STILLS))
            self.index = {
                sha: entry
                for sha, entry in known.items()
                if all(frame_key(sha, moment) in scorer.cached_hashes for moment in entry[1])
            }
        self.cached = scorer.cached_hashes | frozenset(self.index)
        # what a file that may be animated is taken from the cache as (see the module's docstring)
        self.cached_animatable = frozenset(self.index) | (scorer.cached_hashes & stills) if self.animations else None
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
        """An image file's bytes as the model's input; a video named like an image is sampled from them, and so is
        an animated image when animations are sorted by their frames."""
        if sniff_video_format(data[:SNIFF_BYTES]):
            if not video_support():
                raise DecodeError(f"a video named like an image; sorting videos needs the video extra: {VIDEO_EXTRA}")
            return sample_video(io.BytesIO(data), self.sampling, self.prepare_frame, short_side=self.short_side)
        if self.animations and sniff_image_format(data[:16]) in ANIMATED_FORMATS:
            frames = sample_animation(data, self.sampling, self.prepare_frame, short_side=self.short_side)
            if frames is not None:
                return frames
        return self.scorer.prepare(data)

    def _read_animation(self, found: FoundFile) -> Prepared:
        """An animated image a run sorted as a video (its row says `video`), read and sampled again."""
        try:
            bytes_read = read_file(found, max_bytes=self.max_bytes)
        except DecodeError as error:
            return Prepared(found, "", error=str(error))
        prepared = Prepared(found, bytes_read.sha256, stamp=bytes_read.stamp)
        if bytes_read.data is None:
            prepared.error = f"larger than the {self.max_bytes // MEGABYTE} MB limit for images; not decoded"
            return prepared
        try:
            prepared.pixels = self.prepare(bytes_read.data)
        except DecodeError as error:
            prepared.error = str(error)
        return prepared

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
                if sniff_image_format(handle.read(16)):  # an animation sorted as a video, not in the cache
                    return self._read_animation(found)
                handle.seek(0)
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

    def known_hashes(self, files: list[FoundFile], cached: Set[str]) -> dict[str, str]:
        """Files unchanged since they were hashed whose embeddings (a video's: every frame's) are in `cached`."""
        cache = self.scorer.cache
        if cache is None:
            return {}
        known = {found.relative: cache.known_hash(found.path) for found in files}
        return {relative: sha for relative, sha in known.items() if sha in cached}

    def _route(self, found: FoundFile) -> str:
        if found.kind == "video":
            return "video"
        return "animatable" if self.cached_animatable is not None and may_be_animated(found) else "image"

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
        self.max_bytes = max_bytes
        routes = {"image": self.cached, "animatable": self.cached_animatable, "video": self.cached}
        chosen = {route: [found for found in files if self._route(found) == route] for route in routes}
        known = {
            route: self.known_hashes([found for found in chosen[route] if found.relative not in distrusted], cached)
            for route, cached in routes.items()
            if cached is not None
        }
        streams = {
            route: prepared_stream(chosen[route], self.prepare, workers=workers, lookahead=lookahead,
                                   known_hashes=known[route], cached=routes[route], max_bytes=max_bytes)
            for route in ("image", "animatable") if chosen[route]
        }  # fmt: skip
        streams["video"] = self._videos(chosen["video"], known["video"], workers)
        try:
            for found in files:
                item = next(streams[self._route(found)])
                if item.cached and item.sha256 in self.index and not isinstance(item.pixels, VideoFrames):
                    duration, times = self.index[item.sha256]  # a video (or animation) named like an image, cached
                    item.pixels = VideoFrames(times, duration)
                yield item
        finally:
            for stream in streams.values():
                stream.close()

    # Scoring -------------------------------------------------------------------------------------
    def score(self, items: list[Prepared]) -> Scores:
        """One row of scores per file; a video's from its frames (MediaScores keeps them)."""
        videos = [item.pixels if isinstance(item.pixels, VideoFrames) else None for item in items]
        if not any(videos):
            self._remember(items, videos)
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
        self._remember(items, videos)
        for video in videos:
            if video is not None:
                video.pixels = None  # scored: the frames need not be held while the batch is placed
        return aggregate(frame_scores, spans, [(v.times, v.duration) if v else None for v in videos], self.how)

    def _remember(self, items: list[Prepared], videos: list[VideoFrames | None]) -> None:
        """Count the batch's cache hits and misses, and keep in the cache which frames each new video (or
        animation) gave, and which files that might have been animated were still images."""
        cache = self.scorer.cache
        if cache is None:
            return
        fresh: dict[bool, dict[str, tuple[float | None, tuple[float, ...]]]] = {False: {}, True: {}}
        stills = {}
        for item, video in zip(items, videos):
            if video is None:
                self.counts.image_hits += item.cached
                self.counts.image_misses += not item.cached
                if not item.cached and self.animations and may_be_animated(item.found):
                    stills[item.sha256] = (None, ())
            elif video.pixels is None:
                self.counts.frame_hits += len(video.times)
            else:
                self.counts.frame_misses += len(video.times)
                fresh[video.animated][item.sha256] = (video.duration, video.times)
        for animated, entries in fresh.items():
            if entries:
                cache.put_videos(self.animation_key if animated else self.sampling.key, entries)
        if stills:
            cache.put_videos(STILLS, stills)

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
