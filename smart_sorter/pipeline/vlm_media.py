"""Images and videos read for a vision-language model, in file order: an image is prepared by the coder
(`prepare(bytes)`), a video is sampled by `pipeline.video` and each frame prepared by the coder
(`prepare_frame(image)`), so that the model is sent the video's frames together, in one request.

Videos are hashed streaming and sampled from the file itself (opened as safely as an image is), in their
own threads; a video named like an image is met by the image reader and sampled from its bytes.
"""

from __future__ import annotations

import io
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..core.coding import Seen
from ..errors import DecodeError
from .finding import FoundFile
from .reading import Prepared, _open, _yield_to_model, prepared_stream, read_file
from .video import SNIFF_BYTES, VIDEO_EXTRA, Sampling, VideoFrames, sample_video, sniff_video_format, video_support

VIDEOS_AHEAD = 2  # videos sampled ahead of the model per worker, each holding its frames


class CodingMedia:
    """Prepares a coding run's files for its coder: images as images, videos as their sampled frames."""

    def __init__(self, coder: Any, frames: int) -> None:
        self.coder = coder
        self.sampling = Sampling(frames=frames)

    def prepare(self, data: bytes) -> Any:
        """An image file's bytes as the coder's input; a video named like an image is sampled from them."""
        if sniff_video_format(data[:SNIFF_BYTES]):
            if not video_support():
                raise DecodeError(f"a video named like an image; coding videos needs the video extra: {VIDEO_EXTRA}")
            return sample_video(io.BytesIO(data), self.sampling, self.coder.prepare_frame)
        return self.coder.prepare(data)

    def read_video(self, found: FoundFile) -> Prepared:
        """A video hashed (streamed: bounded memory whatever its size), then sampled from its file."""
        try:
            bytes_read = read_file(found, max_bytes=0)
        except DecodeError as error:
            return Prepared(found, "", error=str(error))
        if bytes_read.size == 0:
            return Prepared(found, bytes_read.sha256, error="empty file (0 bytes)")
        if not video_support():
            return Prepared(found, bytes_read.sha256, error=f"coding videos needs the video extra: {VIDEO_EXTRA}")
        try:
            with os.fdopen(_open(found), "rb") as handle:
                frames = sample_video(handle, self.sampling, self.coder.prepare_frame)
        except DecodeError as error:
            return Prepared(found, bytes_read.sha256, error=str(error))
        except MemoryError:
            return Prepared(found, bytes_read.sha256, error="video too large for the memory available")
        return Prepared(found, bytes_read.sha256, pixels=frames, stamp=bytes_read.stamp)

    def _videos(self, videos: list[FoundFile], workers: int) -> Iterator[Prepared]:
        with ThreadPoolExecutor(workers, thread_name_prefix="smart-sorter-video", initializer=_yield_to_model) as pool:
            pending: deque[Future[Prepared]] = deque()
            for found in videos:
                pending.append(pool.submit(self.read_video, found))
                if len(pending) > VIDEOS_AHEAD * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def stream(self, files: list[FoundFile], *, workers: int, lookahead: int, max_bytes: int) -> Iterator[Prepared]:
        """Every file prepared, in the order of `files`: images and videos read ahead side by side."""
        images = prepared_stream(
            [found for found in files if found.kind != "video"], self.prepare, workers=workers, lookahead=lookahead,
            max_bytes=max_bytes,
        )  # fmt: skip
        videos = self._videos([found for found in files if found.kind == "video"], workers)
        try:
            for found in files:
                yield next(videos if found.kind == "video" else images)
        finally:
            images.close()
            videos.close()


def seen_of(item: Any) -> Seen:
    """What the model is shown of a prepared file: an image, or a video's frames."""
    return Seen("video", item.times, item.duration) if isinstance(item, VideoFrames) else Seen()
