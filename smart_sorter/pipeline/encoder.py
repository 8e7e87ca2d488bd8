"""The model behind a small object: load on first use, embed images and texts, or classify via pipeline."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..core.scoring import ScoreHead
from ..errors import ModelError


def pick_device(requested: str = "auto") -> str:
    """`auto` means CUDA, else Apple's MPS, else the CPU."""
    import torch

    if requested != "auto":
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise ModelError(f"Device {requested!r} was asked for but no CUDA GPU is available; use --device cpu.")
        return requested
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~", ".\\")) or "\\" in model or model.count("/") > 1


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")


def _load_error(model: str, error: Exception, *, hub_reachable: bool | None = None) -> ModelError:
    text = str(error)
    if isinstance(error, (ValueError, KeyError)) or "Unrecognized" in text or "does not appear" in text:
        return ModelError(
            f"{model!r} is not a zero-shot image classification model this tool can use ({text.splitlines()[0]})."
            " Pick a CLIP or SigLIP model, such as openai/clip-vit-base-patch32."
        )
    if _offline():
        return ModelError(
            f"Could not load the model {model!r}: offline mode (HF_HUB_OFFLINE=1) is on and it is not in the local"
            " Hugging Face cache. Check the name, pass the path of a local model folder, or download the model"
            " once on a machine with internet (it then stays in the cache)."
        )
    reason = (
        "this machine cannot reach the Hugging Face Hub, and the model is not in the local cache"
        if hub_reachable is False
        else "the Hugging Face Hub has no model of that name (or it is private), and it is not in the local cache"
    )
    return ModelError(
        f"Could not load the model {model!r}: {reason}. Check the name, or pass the path of a local model folder;"
        " on a machine without internet, download the model once elsewhere and set HF_HUB_OFFLINE=1."
    )


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub's address answers at all, within seconds: a machine without internet is told at
    once, instead of after the half minute of retries a download takes to give up."""
    import socket
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    address = urlsplit(constants.ENDPOINT)
    port = address.port or (443 if address.scheme == "https" else 80)
    try:
        with socket.create_connection((address.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def _from_pretrained(location: str, revision: str | None, text_only: bool, **options: Any) -> tuple[Any, Any, Any]:
    from transformers import AutoImageProcessor, AutoModelForZeroShotImageClassification, AutoTokenizer

    from .text_tower import load_text_side

    network = load_text_side(location, revision, **options) if text_only else None
    if network is None or not is_dual_encoder(network):
        network = AutoModelForZeroShotImageClassification.from_pretrained(location, revision=revision, **options)
    tokenizer = AutoTokenizer.from_pretrained(location, revision=revision, **options)
    processor = AutoImageProcessor.from_pretrained(location, revision=revision, **options)
    return network, tokenizer, processor


def load_model_parts(model: str, *, revision: str | None = None, text_only: bool = False) -> tuple[Any, Any, Any]:
    """(model, tokenizer, image processor) from a hub id or a local folder, with user-facing errors.

    With `text_only`, a dual encoder comes without its image tower when its files allow that
    (`text_tower.load_text_side`), else whole.

    A hub id is looked up in the local cache first; only when it is not there is the Hub asked, and a
    machine that cannot reach the Hub is told within seconds."""
    if _looks_like_path(model) and not Path(model).expanduser().exists():
        raise ModelError(f"The model folder {model!r} does not exist; check the path, or give a Hugging Face model id.")
    local = Path(model).expanduser().exists()
    location = str(Path(model).expanduser()) if local else model
    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    hub_logging.set_verbosity_error()  # its retry warnings would bury our one-line message
    try:
        try:
            network, tokenizer, processor = _from_pretrained(location, revision, text_only, local_files_only=not local)
        except OSError:
            if local or _offline():
                raise
            if not hub_reachable():
                raise _load_error(model, OSError("unreachable"), hub_reachable=False) from None
            network, tokenizer, processor = _from_pretrained(location, revision, text_only)
    except (OSError, ValueError, KeyError) as error:
        raise _load_error(model, error) from error
    except ImportError as error:
        raise ModelError(f"The model {model!r} needs a package that is not installed: {error}".strip()) from error
    return network.eval(), tokenizer, processor


def _embedding(output: Any):
    """transformers 5 returns an output object whose pooler_output is the projected embedding."""
    return output if hasattr(output, "shape") else output.pooler_output


def _describe(encoder: Any, network: Any, device: str, dtype: Any = None) -> dict[str, Any]:
    from .precision import precision_of

    dtype = dtype if dtype is not None else next(network.parameters()).dtype
    return {
        "id": encoder.model_id,
        "revision": encoder.revision or getattr(network.config, "_commit_hash", None),
        "model_type": network.config.model_type,
        "kind": encoder.kind,
        "device": device,
        "dtype": str(dtype).replace("torch.", ""),
        "precision": precision_of(dtype),  # of the image tower; part of the embedding cache's key
    }


def is_dual_encoder(network: Any) -> bool:
    return all(hasattr(network, name) for name in ("get_image_features", "get_text_features")) and (
        hasattr(network, "logit_scale") or hasattr(network, "temperature")
    )


class _ModelHolder:
    """A model named by hub id or path, loaded on first use (or handed over already loaded as `parts`)."""

    kind = ""

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        revision: str | None = None,
        parts: tuple[Any, Any, Any] | None = None,
    ) -> None:
        self.model_id = model
        self.requested_device = device
        self.revision = revision
        self._loaded_parts = parts

    def _take_parts(self) -> tuple[Any, Any, Any]:
        parts = self._loaded_parts or load_model_parts(self.model_id, revision=self.revision)
        self._loaded_parts = None
        return parts


def _image_size(network: Any) -> int:
    return int(getattr(getattr(network.config, "vision_config", None), "image_size", 224))


def _auto_is_known(requested_device: str) -> bool:
    """Whether `auto` precision can be told without timing the image tower (CUDA, or a CPU without bf16)."""
    from .precision import native_bf16

    device = pick_device(requested_device)
    return device.startswith("cuda") or (device == "cpu" and not native_bf16())


class DualEncoder(_ModelHolder):
    """A CLIP-like model: images and texts embedded apart, so label texts are embedded once per run.

    `precision` is that of the image tower (`precision.choose_precision`; the text tower stays
    fp32). With `towers="text"` only the text tower is loaded at first (a re-sort from cached
    embeddings needs no more); the whole model is loaded when an image has to be embedded. With
    `streamline`, a CLIP image tower computes only what the embedding needs
    (`streamlining.streamlined_embedder`); without it (the exact preprocessing) images go through
    the model's own `get_image_features`.
    """

    kind = "dual"

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        revision: str | None = None,
        precision: str = "auto",
        towers: str = "both",
        streamline: bool = True,
        parts: tuple[Any, Any, Any] | None = None,
    ) -> None:
        from .precision import PRECISIONS

        if precision not in PRECISIONS:
            raise ModelError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}.")
        super().__init__(model, device=device, revision=revision, parts=parts)
        self.requested_precision = precision
        self.towers = towers
        self.streamline = streamline
        self.precision = "fp32"  # of the image tower, once loaded
        self._streamlined: Any = None  # pixels -> embeddings by the class token, when the tower allows it

    @cached_property
    def _parts(self) -> tuple[Any, Any, Any]:
        text_only = self.towers == "text" and self._loaded_parts is None
        if text_only and self.requested_precision == "auto" and not _auto_is_known(self.requested_device):
            text_only = False  # which precision images were embedded in needs the image tower to tell
        parts = load_model_parts(self.model_id, revision=self.revision, text_only=True) if text_only else None
        return self._settle(parts or self._take_parts())

    def _settle(self, parts: tuple[Any, Any, Any]) -> tuple[Any, Any, Any]:
        """On the device, the text tower in fp32, the image tower (when loaded) in its precision."""
        import torch

        from .precision import set_image_precision
        from .text_tower import has_image_tower

        network, tokenizer, processor = parts
        if not is_dual_encoder(network):
            raise ModelError(
                f"{self.model_id!r} does not embed images and texts separately; load it with load_encoder()."
            )
        device = pick_device(self.requested_device)
        network = network.to(device=device, dtype=torch.float32)
        if not has_image_tower(network):
            self.precision = "fp32" if self.requested_precision == "auto" else self.requested_precision
            if self.requested_precision == "auto" and device.startswith("cuda"):
                self.precision = "fp16"
            return network, tokenizer, processor
        self.precision = self._remembered_or_chosen(network, device)
        if self.streamline:  # on the fp32 weights, before any cast
            from .streamlining import streamlined_embedder

            self._streamlined = streamlined_embedder(network, _image_size(network))
        if self.precision != "fp32":
            set_image_precision(network, self.precision)
        return network, tokenizer, processor

    def _remembered_or_chosen(self, network: Any, device: str) -> str:
        """The image tower's precision; `auto`'s choice for this model on this machine as chosen the first time,
        so that every run finds the embeddings of the runs before."""
        from .precision import choice_key, choose_precision, image_pass_timer, remember_precision, remembered_precision

        key = choice_key(self.model_id, self.revision, device)
        if self.requested_precision == "auto" and (remembered := remembered_precision(key)):
            return remembered
        timer = image_pass_timer(network, _image_size(network), device)
        precision = choose_precision(self.requested_precision, device, time_pass=timer)
        if self.requested_precision == "auto":
            remember_precision(key, precision)
        return precision

    def load(self) -> DualEncoder:
        self._parts  # noqa: B018 - loading is the point
        return self

    @property
    def has_image_tower(self) -> bool:
        from .text_tower import has_image_tower

        return has_image_tower(self._parts[0])

    def load_image_tower(self) -> None:
        """Load the whole model in place of the text tower alone (when an image must be embedded)."""
        if self.has_image_tower:
            return
        full = self._settle(load_model_parts(self.model_id, revision=self.revision))
        self.__dict__["_parts"] = full

    @property
    def network(self) -> Any:
        return self._parts[0]

    @property
    def image_processor(self) -> Any:
        return self._parts[2]

    @property
    def device(self) -> Any:
        return next(self.network.parameters()).device

    @property
    def model_type(self) -> str:
        return self.network.config.model_type

    @property
    def image_dtype(self) -> Any:
        from .precision import torch_dtype

        return torch_dtype(self.precision)

    def describe(self) -> dict[str, Any]:
        """What the run manifest records of the model (with the image tower's precision)."""
        return _describe(self, self.network, str(self.device), self.image_dtype)

    @property
    def streamlined(self) -> bool:
        """Whether images are embedded by the streamlined tower (`streamlining`), not the model's own pass;
        the same numbers within rounding, so neither the manifest nor the cache's key tells them apart."""
        return self._streamlined is not None

    @property
    def head(self) -> ScoreHead:
        network = self.network
        if hasattr(network, "logit_scale"):
            scale = float(network.logit_scale.detach().float().exp())
        else:  # ALIGN divides by a temperature instead
            scale = 1.0 / float(network.temperature.detach().float())
        bias = float(network.logit_bias.detach().float()) if hasattr(network, "logit_bias") else 0.0
        return ScoreHead(scale, bias, "sigmoid" if "siglip" in self.model_type else "softmax")

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """Unnormalised text embeddings, tokenised as the pipeline tokenises them."""
        import torch

        tokenizer = self._parts[1]
        options: dict[str, Any] = {"padding": True}
        if "siglip" in self.model_type:  # SigLIP was trained on max-length padding
            options.update(padding="max_length", max_length=64, truncation=True)
        else:
            limit = getattr(getattr(self.network.config, "text_config", None), "max_position_embeddings", None)
            if limit:
                options.update(truncation=True, max_length=limit)
        inputs = tokenizer(list(texts), return_tensors="pt", **options).to(self.device)
        with torch.inference_mode():
            output = self.network.get_text_features(**inputs)
        return _embedding(output).float().cpu().numpy()

    def embed_images(self, pixel_values: Any, *, own_pass: bool = False) -> np.ndarray:
        """Unnormalised image embeddings for a batch of pixel values; with `own_pass` (the exact
        preprocessing) through the model's own `get_image_features` even when streamlined."""
        import torch

        from .gpu import to_device

        self.load_image_tower()
        with torch.inference_mode():
            pixels = to_device(pixel_values, self.device, self.image_dtype)
            if self._streamlined is not None and not own_pass:
                output = self._streamlined(pixels)
            else:
                output = self.network.get_image_features(pixel_values=pixels)
        return _embedding(output).float().cpu().numpy()


class PipelineClassifier(_ModelHolder):
    """Any other zero-shot image model, through the transformers pipeline with batching."""

    kind = "pipeline"

    @cached_property
    def pipe(self) -> Any:
        from transformers import pipeline

        network, tokenizer, processor = self._take_parts()
        return pipeline(
            "zero-shot-image-classification",
            model=network,
            tokenizer=tokenizer,
            image_processor=processor,
            device=pick_device(self.requested_device),
        )

    def load(self) -> PipelineClassifier:
        self.pipe  # noqa: B018
        return self

    def describe(self) -> dict[str, Any]:
        return _describe(self, self.pipe.model, str(self.pipe.device))

    def classify(self, images: list[Any], prompts: list[str], batch_size: int) -> np.ndarray:
        """Probabilities over `prompts` for each PIL image, in the order of `prompts`."""
        results = self.pipe(images, candidate_labels=list(prompts), hypothesis_template="{}", batch_size=batch_size)
        table = np.zeros((len(images), len(prompts)))
        position = {prompt: index for index, prompt in enumerate(prompts)}
        for row, result in enumerate(results):
            for item in result:
                table[row, position[item["label"]]] = item["score"]
        return table


def load_encoder(
    model: str,
    *,
    device: str = "auto",
    revision: str | None = None,
    precision: str = "auto",
    towers: str = "both",
    streamline: bool = True,
) -> DualEncoder | PipelineClassifier:
    """Load `model` once: a DualEncoder when it has separate towers, else a PipelineClassifier.

    `precision`, `towers` and `streamline` (see DualEncoder) apply to a dual encoder."""
    text_only = towers == "text" and (precision != "auto" or _auto_is_known(device))
    parts = load_model_parts(model, revision=revision, text_only=text_only)
    if not is_dual_encoder(parts[0]):
        return PipelineClassifier(model, device=device, revision=revision, parts=parts).load()
    encoder = DualEncoder(
        model, device=device, revision=revision, precision=precision, towers=towers, streamline=streamline, parts=parts
    )
    return encoder.load()


def load_encoder_for(
    options: Any, *, precision: str | None = None, towers: str = "both", streamline: bool | None = None
) -> Any:
    """`load_encoder` with a run's settings (`SortOptions`): its model, device and revision, its precision
    (or `precision`, as recorded by an earlier run), streamlined unless the preprocessing is exact (or as
    `streamline` says: an encoder kept for runs of either preprocessing is, and runs exact ones unstreamlined)."""
    return load_encoder(
        options.model,
        device=options.device,
        revision=options.revision,
        precision=precision or options.model_precision,
        towers=towers,
        streamline=options.preprocess != "exact" if streamline is None else streamline,
    )
