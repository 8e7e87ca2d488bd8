"""Zero-shot object detectors (OWL-ViT, OWLv2, Grounding DINO, OmDet-Turbo...) behind one small object.

OWL models score each image patch against each query text apart, so their query texts are
embedded once per run and images go through the image tower in batches; the boxes and scores are
then post-processed one query at a time by the model's own image processor, exactly as
`transformers.pipeline("zero-shot-object-detection")` does. Any other detector (Grounding DINO reads
image and text together) runs through that pipeline itself.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ..errors import ModelError
from .encoder import _describe, _offline, hub_reachable, pick_device

OWL_TYPES = ("owlvit", "owlv2")  # their class head compares patches with query embeddings made apart
Found = tuple[int, float, list[int]]  # (query index, score, [xmin, ymin, xmax, ymax] in pixels of the view)


def _not_a_detector(model: str, error: Exception) -> ModelError:
    return ModelError(
        f"{model!r} is not a zero-shot object detection model this tool can use ({str(error).splitlines()[0]})."
        " Pick one such as google/owlv2-base-patch16-ensemble or IDEA-Research/grounding-dino-tiny."
    )


def _from_pretrained(location: str, revision: str | None, **options: Any) -> tuple[Any, Any]:
    from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

    network = AutoModelForZeroShotObjectDetection.from_pretrained(location, revision=revision, **options)
    processor = AutoProcessor.from_pretrained(location, revision=revision, **options)
    return network, processor


def load_detector_parts(model: str, *, revision: str | None = None) -> tuple[Any, Any]:
    """(model, processor) from a hub id or a local folder, with the sentences of `encoder.load_model_parts`."""
    path = Path(model).expanduser()
    if model.startswith(("/", "./", "../", "~")) and not path.exists():
        raise ModelError(f"The model folder {model!r} does not exist; check the path, or give a Hugging Face model id.")
    local = path.exists()
    location = str(path) if local else model
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        try:
            return _from_pretrained(location, revision, local_files_only=not local)
        except OSError:
            if local or _offline():
                raise
            if not hub_reachable():
                raise ModelError(
                    f"Could not load the detector {model!r}: this machine cannot reach the Hugging Face Hub and it is"
                    " not in the local cache. Pass the path of a local model folder, or download it once elsewhere."
                ) from None
            return _from_pretrained(location, revision)
    except (ValueError, KeyError) as error:
        raise _not_a_detector(model, error) from error
    except OSError as error:
        raise ModelError(
            f"Could not load the detector {model!r} ({str(error).splitlines()[0]}). Check the name, or pass the path"
            " of a local model folder; offline (HF_HUB_OFFLINE=1), it must be in the local cache."
        ) from error
    except ImportError as error:
        raise ModelError(f"The detector {model!r} needs a package that is not installed: {error}".strip()) from error


def _as_box(box: Any) -> list[int]:
    """A box tensor as the pipeline gives it: whole pixels, truncated (`.int()`)."""
    return [int(v) for v in box.int().tolist()]


class Detector:
    """A zero-shot detector named by hub id or path, loaded on first use. `prepare` (in decoding threads)
    turns an image into the model's input; `detect` finds the queries' boxes in a batch of them."""

    kind = "detector"

    def __init__(
        self, model: str, *, device: str = "auto", revision: str | None = None, precision: str = "auto"
    ) -> None:
        self.model_id = model
        self.revision = revision
        self.requested_device = device
        self.requested_precision = precision
        self._queries: list[str] = []
        self._query_embeds: Any = None

    @cached_property
    def _parts(self) -> tuple[Any, Any]:
        """On the device, in fp16 on CUDA when `auto` (as the image tower of sorting), else as asked."""
        from .precision import torch_dtype

        network, processor = load_detector_parts(self.model_id, revision=self.revision)
        device = pick_device(self.requested_device)
        precision = self.requested_precision
        if precision == "auto":  # no timing probe here: a detector's image tower dwarfs it, and bf16 is rare
            precision = "fp16" if device.startswith("cuda") else "fp32"
        return network.to(device=device, dtype=torch_dtype(precision)).eval(), processor

    def load(self) -> Detector:
        self._parts  # noqa: B018 - loading is the point
        return self

    @property
    def network(self) -> Any:
        return self._parts[0]

    @property
    def image_processor(self) -> Any:
        processor = self._parts[1]
        return getattr(processor, "image_processor", processor)

    @property
    def tokenizer(self) -> Any:
        return getattr(self._parts[1], "tokenizer", self._parts[1])

    @property
    def device(self) -> Any:
        return next(self.network.parameters()).device

    @property
    def owl(self) -> bool:
        return self.network.config.model_type in OWL_TYPES

    def describe(self) -> dict[str, Any]:
        return _describe(self, self.network, str(self.device))

    @property
    def input_side(self) -> int:
        """The side of the square the model sees (tiles are never smaller)."""
        size = getattr(self.image_processor, "size", None) or {}
        get = size.get if isinstance(size, dict) else lambda key, default=None: getattr(size, key, default)
        return int(get("height") or get("shortest_edge") or 800)

    def set_queries(self, queries: list[str]) -> None:
        """The query texts of this run; an OWL model embeds them here, once."""
        import torch

        self._queries = list(queries)
        if not self.owl:
            return
        towers = getattr(self.network, self.network.config.model_type)  # the CLIP-like model inside
        embeds = []
        for query in self._queries:  # one at a time, tokenised as the pipeline tokenises each label
            inputs = self.tokenizer(query, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                pooled = towers.text_model(**inputs).pooler_output
                embeds.append(towers.text_projection(pooled)[0])
        stacked = torch.stack(embeds).float()
        self._query_embeds = (stacked / torch.linalg.norm(stacked, ord=2, dim=-1, keepdim=True)).to(self.network.dtype)

    def check_query_images(self) -> None:
        if not self.owl:
            raise ModelError(
                f"{self.model_id!r} cannot look for objects shown in example images; OWL-ViT and OWLv2 models can"
                " (such as google/owlv2-base-patch16-ensemble). Name the objects in words instead."
            )

    def set_query_images(self, images: list[Any]) -> None:
        """Query by example (OWL models): each image (PIL) is a query; its embedding is that of the box the
        model finds most object-like in it, as `image_guided_detection` takes it."""
        import numpy as np
        import torch

        self.check_query_images()
        network = self.network
        pixels = torch.from_numpy(np.stack([self.prepare(image)[0] for image in images])).to(self.device)
        with torch.inference_mode():
            feature_map = network.image_embedder(pixel_values=pixels.to(network.dtype))[0]
            batch, rows, columns, width = feature_map.shape
            feats = feature_map.reshape(batch, rows * columns, width)
            self._query_embeds = network.embed_image_query(feats, feature_map)[0][:, 0, :]
        self._queries = [f"example {index + 1}" for index in range(len(images))]

    @cached_property
    def fast_pixels(self) -> Any:
        """OWLv2's preprocessing computed faster with the same pixels (`owl_preprocessing`), where it applies."""
        from .owl_preprocessing import fast_owlv2

        return fast_owlv2(self.image_processor) if self.owl else None

    def prepare(self, image: Any, preprocess: str = "exact") -> Any:
        """One image (PIL, RGB) as the model's input: pixel values and (height, width) for an OWL model (by
        its own image processor, or with `preprocess="fast"` its faster twin where there is one), else the
        image itself for the pipeline."""
        if not self.owl:
            return image
        if preprocess == "fast" and self.fast_pixels is not None:
            return self.fast_pixels(image), (image.height, image.width)
        values = self.image_processor(images=image, return_tensors="np")["pixel_values"][0]
        return values, (image.height, image.width)

    def detect(self, inputs: list[Any], threshold: float) -> list[list[Found]]:
        """Per input, every (query, score, box) scoring above `threshold`, in the pipeline's order per query."""
        if not inputs:
            return []
        return self._detect_owl(inputs, threshold) if self.owl else self._detect_pipeline(inputs, threshold)

    def _detect_owl(self, inputs: list[Any], threshold: float) -> list[list[Found]]:
        import numpy as np

        sizes = [size for _, size in inputs]
        return self.found_in(self.image_side(np.stack([values for values, _ in inputs])), sizes, threshold)

    def image_side(self, pixels: Any) -> Any:
        """What an OWL model computes from images alone, in fp32, per image (`pixels`: the stacked inputs):
        per patch its unit class embedding, the logit shift and scale, and its box (centre x, y, width,
        height in [0, 1]); (images, patches, width + 6). Query texts meet it only in `found_in`, so it can
        be cached and searched again for other objects."""
        import numpy as np
        import torch

        network = self.network
        head = network.class_head
        pixels = torch.from_numpy(np.asarray(pixels)).to(self.device, network.dtype)
        with torch.inference_mode():
            feature_map = network.image_embedder(pixel_values=pixels)[0]
            batch, rows, columns, width = feature_map.shape
            image_feats = feature_map.reshape(batch, rows * columns, width)
            class_embeds = head.dense0(image_feats).float()  # normalised in fp32, as the head does in fp32
            class_embeds = class_embeds / (torch.linalg.norm(class_embeds, dim=-1, keepdim=True) + 1e-6)
            shift = head.logit_shift(image_feats).float()
            scale = head.elu(head.logit_scale(image_feats).float()) + 1
            boxes = network.box_predictor(image_feats, feature_map).float()
        return torch.cat([class_embeds, shift, scale, boxes], dim=-1).cpu().numpy()

    def found_in(self, image_side: Any, sizes: list[tuple[int, int]], threshold: float) -> list[list[Found]]:
        """The queries' boxes above `threshold` in images of `sizes` (height, width) from their `image_side`:
        the class head's last step and the model's own post-processing, one query at a time as the pipeline."""
        import torch

        side = torch.from_numpy(image_side)
        class_embeds, shift, scale, boxes = side[..., :-6], side[..., -6:-5], side[..., -5:-4], side[..., -4:]
        queries = self._query_embeds.float().cpu()
        queries = queries / (torch.linalg.norm(queries, dim=-1, keepdim=True) + 1e-6)
        logits = torch.einsum("...pd,...qd->...pq", class_embeds, queries[None].expand(len(side), -1, -1))
        logits = (logits + shift) * scale
        found: list[list[Found]] = [[] for _ in sizes]
        target_sizes = torch.tensor(sizes, dtype=torch.int32)
        for query in range(len(self._queries)):
            outputs = SimpleNamespace(logits=logits[..., query : query + 1], pred_boxes=boxes)
            results = self.image_processor.post_process_object_detection(
                outputs=outputs, threshold=threshold, target_sizes=target_sizes
            )
            for index, result in enumerate(results):
                for score, box in zip(result["scores"], result["boxes"]):
                    found[index].append((query, score.item(), _as_box(box)))
        return found

    @cached_property
    def _pipe(self) -> Any:
        from transformers import pipeline

        return pipeline(
            "zero-shot-object-detection",
            model=self.network,
            tokenizer=self.tokenizer,
            image_processor=self.image_processor,
            device=self.device,
        )

    def _detect_pipeline(self, images: list[Any], threshold: float) -> list[list[Found]]:
        position = {query: index for index, query in enumerate(self._queries)}
        results = self._pipe(images, candidate_labels=list(self._queries), threshold=threshold)
        if images and len(images) == 1 and results and isinstance(results[0], dict):
            results = [results]
        return [
            [(position[item["label"]], item["score"], [item["box"][k] for k in ("xmin", "ymin", "xmax", "ymax")])
             for item in result]
            for result in results
        ]  # fmt: skip


def load_detector(
    model: str, *, device: str = "auto", revision: str | None = None, precision: str = "auto"
) -> Detector:
    return Detector(model, device=device, revision=revision, precision=precision).load()
