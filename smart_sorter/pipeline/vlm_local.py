"""Coding images with a local transformers model (`image-text-to-text`: SmolVLM, Qwen2.5-VL, Gemma 3, LLaVA...).

The images never leave the machine; a video is given as its sampled frames, several images in one prompt.
Images go through the model in batches, and decoding is constrained
to the codebook's JSON schema by xgrammar (a logits processor that lets through only the tokens that keep
the answer valid), so every answer parses and fits: numbers are bounded, texts capped, options exact.
The answer is still checked by `read_answer`, as every backend's is.
"""

from __future__ import annotations

import json
from typing import Any

from ..core.codebook import NUMBER, Codebook, read_answer
from ..core.coding import Coded, CodingOptions, video_prompt
from ..errors import BackendError
from .video import VideoFrames
from .vlm_images import image_for_model, scaled_for_model
from .vlm_media import seen_of

NUMBER_BOUND = 1e9  # numbers without bounds of their own are kept within ±this while decoding
CHARACTER_BYTES = 4  # a byte-level tokenizer may spend a token per byte of a character


def decoding_schema(codebook: Codebook) -> dict[str, Any]:
    """The schema decoding follows: the codebook's, with every number bounded so a model cannot write digits
    forever."""
    schema = codebook.schema()
    for field in codebook.fields:
        if field.kind == NUMBER:
            bounds = {"minimum": -NUMBER_BOUND, "maximum": NUMBER_BOUND}
            schema["properties"][field.name] = {**bounds, **schema["properties"][field.name]}
    return schema


def longest_answer(codebook: Codebook) -> int:
    """Tokens enough for the longest answer the decoding schema allows, even one token per byte."""
    characters = 2
    for field in codebook.fields:
        value = {
            "options": max(map(len, field.options), default=0) + 2, "yes/no": 5, "number": 24, "text": 2 + 6 * 200,
            "several options": sum(len(option) + 4 for option in field.options) + 2,
        }  # fmt: skip
        characters += len(json.dumps(field.name)) + 4 + value[field.kind]
    return CHARACTER_BYTES * characters + 8


class LocalCoder:
    """A transformers image-text-to-text model and its processor, loaded on first use."""

    def __init__(self, options: CodingOptions) -> None:
        self.options = options
        self.model_id = options.model_name
        self.model: Any = None
        self.processor: Any = None
        self.device = "cpu"
        self._grammars: dict[str, Any] = {}

    def describe(self) -> dict[str, Any]:
        return {"backend": "local", "id": self.model_id, "device": self.device, "constrained": "xgrammar"}

    def load(self) -> LocalCoder:
        if self.model is not None:
            return self
        try:
            import xgrammar  # noqa: F401 - checked before the model loads
        except ImportError:
            raise BackendError(
                "The local backend constrains answers with xgrammar: pip install 'smart-sorter[coding]'."
            ) from None
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        wanted = self.options.device
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if wanted == "auto" else wanted
        dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        try:
            self.processor = AutoProcessor.from_pretrained(self.model_id)
            model = AutoModelForImageTextToText.from_pretrained(self.model_id, dtype=dtype)
        except (OSError, ValueError, KeyError) as error:
            raise BackendError(
                f"The model {self.model_id!r} cannot be loaded as an image-text-to-text model ({error}). Check the"
                " name or folder (--model); without internet, give a folder saved with save_pretrained."
            ) from None
        self.model = model.to(self.device).eval()
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        tokenizer.padding_side = "left"  # batched generation continues each prompt at its end
        return self

    def prepare(self, data: bytes) -> Any:
        return image_for_model(data, self.options.image_size)

    def prepare_frame(self, image: Any) -> Any:
        return scaled_for_model(image, self.options.image_size)

    def _prompt(self, item: Any, codebook: Codebook) -> tuple[list[Any], str]:
        """One file's images (a video's frames) and its prompt, with an image marker for each."""
        images = list(item.pixels) if isinstance(item, VideoFrames) else [item]
        text = video_prompt(codebook.prompt(), seen_of(item))
        content = [*({"type": "image"} for _ in images), {"type": "text", "text": text}]
        prompt = self.processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
        return images, prompt

    def _grammar(self, codebook: Codebook) -> Any:
        import xgrammar

        key = json.dumps(codebook.as_dict(), sort_keys=True)
        if key not in self._grammars:
            tokenizer = getattr(self.processor, "tokenizer", self.processor)
            size = self.model.get_output_embeddings().weight.shape[0]
            info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=size)
            schema = json.dumps(decoding_schema(codebook))
            self._grammars[key] = xgrammar.GrammarCompiler(info).compile_json_schema(schema, any_whitespace=False)
        return self._grammars[key]

    def code(self, images: list[Any], codebook: Codebook) -> list[Coded]:  # images: Pillow images or VideoFrames
        """One batch: each image's (or video's) answer, decoded under the codebook's grammar."""
        import torch
        from xgrammar.contrib.hf import LogitsProcessor

        self.load()
        prompts = [self._prompt(item, codebook) for item in images]
        inputs = self.processor(images=[pictures for pictures, _ in prompts], text=[text for _, text in prompts],
                                padding=True, return_tensors="pt").to(self.device)  # fmt: skip
        limit = max(self.options.max_new_tokens, longest_answer(codebook))
        constrained = [LogitsProcessor(self._grammar(codebook))]
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=limit, do_sample=False, logits_processor=constrained)
        new = output[:, inputs["input_ids"].shape[1] :]
        return [self._answer(inputs["attention_mask"][row], new[row], codebook) for row in range(len(images))]

    def _answer(self, mask: Any, generated: Any, codebook: Codebook) -> Coded:
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        ends = {token for token in _as_list(self.model.generation_config.eos_token_id) if token is not None}
        tokens = generated.tolist()
        length = next((index + 1 for index, token in enumerate(tokens) if token in ends), len(tokens))
        text = tokenizer.decode(tokens[:length], skip_special_tokens=True)
        answer = read_answer(text, codebook)
        return Coded(answer.values, answer.problems, text, int(mask.sum()), length, attempts=1)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]
