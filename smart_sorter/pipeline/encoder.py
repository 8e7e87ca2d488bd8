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


def _from_pretrained(location: str, revision: str | None, **options: Any) -> tuple[Any, Any, Any]:
    from transformers import AutoImageProcessor, AutoModelForZeroShotImageClassification, AutoTokenizer

    network = AutoModelForZeroShotImageClassification.from_pretrained(location, revision=revision, **options)
    tokenizer = AutoTokenizer.from_pretrained(location, revision=revision, **options)
    processor = AutoImageProcessor.from_pretrained(location, revision=revision, **options)
    return network, tokenizer, processor


def load_model_parts(model: str, *, revision: str | None = None) -> tuple[Any, Any, Any]:
    """(model, tokenizer, image processor) from a hub id or a local folder, with user-facing errors.

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
            network, tokenizer, processor = _from_pretrained(location, revision, local_files_only=not local)
        except OSError:
            if local or _offline():
                raise
            if not hub_reachable():
                raise _load_error(model, OSError("unreachable"), hub_reachable=False) from None
            network, tokenizer, processor = _from_pretrained(location, revision)
    except (OSError, ValueError, KeyError) as error:
        raise _load_error(model, error) from error
    except ImportError as error:
        raise ModelError(f"The model {model!r} needs a package that is not installed: {error}".strip()) from error
    return network.eval(), tokenizer, processor


def _embedding(output: Any):
    """transformers 5 returns an output object whose pooler_output is the projected embedding."""
    return output if hasattr(output, "shape") else output.pooler_output


def _describe(encoder: Any, network: Any, device: str) -> dict[str, Any]:
    return {
        "id": encoder.model_id,
        "revision": encoder.revision or getattr(network.config, "_commit_hash", None),
        "model_type": network.config.model_type,
        "kind": encoder.kind,
        "device": device,
        "dtype": str(next(network.parameters()).dtype).replace("torch.", ""),
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


class DualEncoder(_ModelHolder):
    """A CLIP-like model: images and texts embedded apart, so label texts are embedded once per run."""

    kind = "dual"

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        revision: str | None = None,
        dtype: Any = None,
        parts: tuple[Any, Any, Any] | None = None,
    ) -> None:
        super().__init__(model, device=device, revision=revision, parts=parts)
        self.requested_dtype = dtype

    @cached_property
    def _parts(self) -> tuple[Any, Any, Any]:
        import torch

        network, tokenizer, processor = self._take_parts()
        if not is_dual_encoder(network):
            raise ModelError(
                f"{self.model_id!r} does not embed images and texts separately; load it with load_encoder()."
            )
        device = pick_device(self.requested_device)
        dtype = self.requested_dtype or (torch.float16 if device.startswith("cuda") else torch.float32)
        return network.to(device=device, dtype=dtype), tokenizer, processor

    def load(self) -> DualEncoder:
        self._parts  # noqa: B018 - loading is the point
        return self

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

    def describe(self) -> dict[str, Any]:
        """What the run manifest records of the model."""
        return _describe(self, self.network, str(self.device))

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

    def embed_images(self, pixel_values: Any) -> np.ndarray:
        """Unnormalised image embeddings for a batch of pixel values."""
        import torch

        with torch.inference_mode():
            pixels = pixel_values.to(device=self.device, dtype=next(self.network.parameters()).dtype)
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


def load_encoder(model: str, *, device: str = "auto", revision: str | None = None) -> DualEncoder | PipelineClassifier:
    """Load `model` once: a DualEncoder when it has separate towers, else a PipelineClassifier."""
    parts = load_model_parts(model, revision=revision)
    kind = DualEncoder if is_dual_encoder(parts[0]) else PipelineClassifier
    return kind(model, device=device, revision=revision, parts=parts).load()
