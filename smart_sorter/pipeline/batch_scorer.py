"""Batches of prepared images to scores, through the embedding cache when the model allows it."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..core.labels import LabelSet
from ..core.scoring import Scores, category_embeddings, score_images, scores_from_prompt_probabilities, similar_pairs
from ..core.tiling import best_view_scores
from ..errors import ModelError
from .decoding import decode_image
from .embedding_cache import EmbeddingCache, model_key
from .encoder import DualEncoder, PipelineClassifier
from .finding import FoundFile
from .gpu import leave_jpegs
from .preprocessing import Preprocessor
from .tiles import TiledPreprocessor

NEGATIVE_TEXT = "something else"
SHOWN_PAIRS = 6  # similar labels named in the advice; the rest are counted


class BatchScorer:
    """Scores batches of prepared files for one run: label texts embedded once, images via the cache.

    A prepared item has `.sha256`, `.pixels` (the model input) and `.cached` (its embedding is in
    the cache, so it was not decoded).
    """

    def __init__(
        self,
        encoder: DualEncoder | PipelineClassifier,
        labels: LabelSet,
        *,
        preprocess: str,
        prompt_mode: str,
        batch_size: int,
        cache: EmbeddingCache | None,
        multi_label: bool = False,
        tiles: int = 0,
    ) -> None:
        self.encoder = encoder
        self.prompts = list(labels.all_prompts)
        self.jpeg_device: Any = None  # where JPEGs are decoded when not in the decoding workers (decode_jpegs_on)
        self.owner = labels.prompt_owner
        self.prompt_mode = prompt_mode
        self.batch_size = batch_size
        if isinstance(encoder, PipelineClassifier):  # scored whole by the pipeline: nothing to cache
            if tiles:
                raise ModelError(
                    f"Tiling needs a model that embeds images and texts apart (CLIP, SigLIP...); {encoder.model_id!r}"
                    " is run through the transformers pipeline. Sort without tiles, or pick such a model."
                )
            # as the pipeline's own load_image: transparency dropped, not composited
            self.prepare: Callable[[bytes], Any] = partial(decode_image, on_white=False)
            self.cache, self.cached_hashes = None, frozenset()
            return
        self.preprocessor: Preprocessor | TiledPreprocessor = Preprocessor(encoder.image_processor, preprocess)
        if tiles:  # each image seen whole and in tiles, scored by its best view per label
            self.preprocessor = TiledPreprocessor(self.preprocessor, tiles)
        self.prepare = self.preprocessor.prepare
        self.prompt_embeddings = encoder.embed_texts(self.prompts)
        self.negative_embedding = None
        if multi_label:  # CLIP-like models score each category against "something else"
            negative = (labels.template or "{}").format(NEGATIVE_TEXT)
            self.negative_embedding = encoder.embed_texts([negative])[0]
        self.head = encoder.head
        self.cache = cache
        self.key = model_key(encoder.describe(), self.preprocessor.mode) + (f"/tiles{tiles}" if tiles else "")
        self.cached_hashes = cache.hashes(self.key) if cache is not None else frozenset()

    def decode_jpegs_on(self, device: Any) -> bool:
        """Leave JPEGs to be decoded a batch at a time on `device` (`gpu.decoded_on_device`) instead of in the
        decoding workers, where the model takes them in `fast` mode, untiled; whether it does."""
        if isinstance(self.encoder, PipelineClassifier) or self.tiled or self.preprocessor.mode != "fast":
            return False
        self.jpeg_device = device
        self.prepare = partial(leave_jpegs, self.preprocessor.prepare)
        return True

    def label_advice(self, categories: tuple[str, ...]) -> list[str]:
        """Labels this model can hardly tell apart (images would split between them by chance), as at
        most one note naming every such pair, the most alike first."""
        if isinstance(self.encoder, PipelineClassifier):
            return []
        embeddings = category_embeddings(self.prompt_embeddings, self.owner, len(categories))
        pairs = sorted(similar_pairs(embeddings, categories), key=lambda pair: -pair[2])
        if not pairs:
            return []
        shown = [f"{first!r}/{second!r} ({cosine:.2f})" for first, second, cosine in pairs[:SHOWN_PAIRS]]
        more = f" and {len(pairs) - SHOWN_PAIRS} more pairs" if len(pairs) > SHOWN_PAIRS else ""
        return [
            f"{'These labels mean' if len(pairs) > 1 else 'These two labels mean'} nearly the same to this model"
            f" (similarity in brackets): {', '.join(shown)}{more}; images may split between them by chance."
            " Merge them or describe each more distinctly."
        ]

    def known_hashes(self, files: list[FoundFile]) -> dict[str, str]:
        """Files unchanged since they were hashed, whose embeddings are cached: they need no reading."""
        if self.cache is None:
            return {}
        known = {found.relative: self.cache.known_hash(found.path) for found in files}
        return {relative: sha for relative, sha in known.items() if sha in self.cached_hashes}

    def score(self, items: list[Any]) -> Scores:
        """Scores of prepared files; each file's hash is remembered with its path (so it is not read again)."""
        scores = self.score_inputs(items)
        self.remember_hashes(items)
        return scores

    def remember_hashes(self, items: list[Any]) -> None:
        """Each prepared file's hash with the size and time the file had when it was hashed, so that a file
        changed since is read again next time (files whose hash was already known have no stamp)."""
        if self.cache is not None:
            stamped = [(Path(item.found.path), item.sha256, item.stamp) for item in items if item.stamp]
            self.cache.remember_hashes(stamped)

    def score_inputs(self, items: list[Any]) -> Scores:
        """Scores of model inputs with `.sha256` (the cache's name of each), `.pixels` and `.cached`,
        embedded `batch_size` at a time."""
        if isinstance(self.encoder, PipelineClassifier):
            probabilities = self.encoder.classify([item.pixels for item in items], self.prompts, self.batch_size)
            return scores_from_prompt_probabilities(probabilities, self.owner)
        embeddings: dict[str, np.ndarray] = {}
        fresh = [item for item in items if not item.cached]
        for start in range(0, len(fresh), self.batch_size):
            batch = fresh[start : start + self.batch_size]
            pixels = self.preprocessor.collate([item.pixels for item in batch])
            if self.preprocessor.mode == "exact" and getattr(self.encoder, "streamlined", False):
                # the exact preprocessing: the model's own forward pass too, whatever encoder was handed in
                vectors = self.encoder.embed_images(pixels, own_pass=True)
            else:
                vectors = self.encoder.embed_images(pixels)
            views = [len(item.pixels) if self.tiled else 1 for item in batch]
            per_image = np.split(vectors, np.cumsum(views)[:-1]) if self.tiled else vectors
            # a tiled image's views are kept as one flat vector: the cache stores one per image
            embeddings.update((item.sha256, np.ravel(vector)) for item, vector in zip(batch, per_image))
        if self.cache is not None:
            if fresh:
                self.cache.put(self.key, {item.sha256: embeddings[item.sha256] for item in fresh})
            from_cache = [item.sha256 for item in items if item.cached]
            embeddings.update(self.cache.get(self.key, from_cache) if from_cache else {})
        width = self.prompt_embeddings.shape[1]
        views = [embeddings[item.sha256].reshape(-1, width) for item in items]
        scores = score_images(
            np.concatenate(views), self.prompt_embeddings, self.owner, self.head, prompt_mode=self.prompt_mode,
            negative_embedding=self.negative_embedding,
        )  # fmt: skip
        return best_view_scores(scores, [len(view) for view in views]) if self.tiled else scores

    @property
    def tiled(self) -> bool:
        return isinstance(self.preprocessor, TiledPreprocessor)
