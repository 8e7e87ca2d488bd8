"""Coding images through any OpenAI-compatible chat API: OpenAI, vLLM, Ollama, llama.cpp, `transformers serve`.

Each image goes to the server as a base64 data URL inside the request (so it leaves the machine when
the server is elsewhere); a video goes as its sampled frames, several images in one request.
The answer is asked for as JSON fitting the codebook's schema, with the
server's structured output (`response_format` json_schema) where it accepts it, else by the prompt
alone; either way it is checked here, and an answer that does not fit is asked again with its problems
shown to the model, up to `tries` answers. Tokens come from the server's `usage`.

Requests that fail on the way (network, time-outs, rate limits, server errors) are retried with
growing pauses by the `openai` client; a server that stays unreachable, refuses the key or does not
know the model stops the run with a sentence, and a rerun asks only what is left.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..core.codebook import Codebook, read_answer, retry_prompt
from ..core.coding import Coded, CodingOptions, video_prompt
from ..errors import BackendError
from .video import VideoFrames
from .vlm_images import data_url_of, image_data_url, scaled_for_model
from .vlm_media import seen_of

Notify = Callable[[str], None]
SCHEMA_NAME = "codebook_answer"
# keywords some servers' structured output refuses; read_answer checks them itself
_UNSUPPORTED = ("uniqueItems", "maxLength")


def _plain_schema(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {key: _plain_schema(value) for key, value in schema.items() if key not in _UNSUPPORTED}
    if isinstance(schema, list):
        return [_plain_schema(value) for value in schema]
    return schema


class OpenAICoder:
    """Asks an OpenAI-compatible server each image's answers; `concurrency` requests in flight."""

    def __init__(self, options: CodingOptions, *, notify: Notify | None = None) -> None:
        self.options = options
        self.model = options.model_name
        self.base_url = options.base_url
        self.notify = notify or (lambda message: None)
        self.structured: bool | None = None  # None: not known yet whether the server takes response_format
        self._lock = threading.Lock()
        self._client: Any = None

    @property
    def where(self) -> str:
        return self.base_url or "the OpenAI API"

    def describe(self) -> dict[str, Any]:
        return {"backend": "openai", "id": self.model, "base_url": self.base_url, "structured": self.structured}

    def load(self) -> OpenAICoder:
        if self._client is not None:
            return self
        try:
            import openai
        except ImportError:
            raise BackendError(
                "The openai backend needs the openai package: pip install 'smart-sorter[openai]'."
            ) from None
        key = os.environ.get("OPENAI_API_KEY")
        if not key and self.base_url is None:
            raise BackendError(
                "The OpenAI API needs a key: set OPENAI_API_KEY, or give --base-url for a server that needs none."
            )
        self._client = openai.OpenAI(
            api_key=key or "none", base_url=self.base_url, timeout=self.options.timeout,
            max_retries=self.options.network_retries,
        )  # fmt: skip
        return self

    def prepare(self, data: bytes) -> str:
        return image_data_url(data, self.options.image_size)

    def prepare_frame(self, image: Any) -> str:
        return data_url_of(scaled_for_model(image, self.options.image_size))

    def code(self, images: list[str | VideoFrames], codebook: Codebook) -> list[Coded]:
        """Each prepared image's answer, in order; requests run `concurrency` at a time."""
        self.load()
        if len(images) == 1 or self.options.concurrency == 1:
            return [self.code_one(image, codebook) for image in images]
        with ThreadPoolExecutor(self.options.concurrency, thread_name_prefix="smart-sorter-ask") as pool:
            return list(pool.map(lambda image: self.code_one(image, codebook), images))

    def code_one(self, image: str | VideoFrames, codebook: Codebook) -> Coded:
        """Ask about one image (or one video's frames) until an answer fits the codebook or `tries` answers
        were given."""
        urls = image.pixels if isinstance(image, VideoFrames) else [image]
        prompt = video_prompt(codebook.prompt(), seen_of(image))
        content = [{"type": "text", "text": prompt}, *({"type": "image_url", "image_url": {"url": u}} for u in urls)]
        messages: list[dict[str, Any]] = [{"role": "user", "content": content}]
        coded = Coded({})
        while coded.attempts < self.options.tries:
            try:
                text, tokens_in, tokens_out = self._complete(messages, codebook)
            except _Failed as failed:
                coded.failure, coded.transient = str(failed), True
                return coded
            coded.attempts += 1
            coded.tokens_in += tokens_in
            coded.tokens_out += tokens_out
            coded.raw = text
            answer = read_answer(text, codebook)
            coded.values, coded.problems = answer.values, answer.problems
            if answer.fits:
                return coded
            messages.append({"role": "assistant", "content": text})
            messages.append({"role": "user", "content": retry_prompt(answer.problems)})
        return coded

    def _request(self, messages: list[dict[str, Any]], codebook: Codebook, structured: bool) -> Any:
        limit = "max_completion_tokens" if self.base_url is None else "max_tokens"
        extra: dict[str, Any] = {limit: self.options.max_new_tokens}
        if structured:
            schema = _plain_schema(codebook.schema())
            extra["response_format"] = {
                "type": "json_schema", "json_schema": {"name": SCHEMA_NAME, "schema": schema, "strict": True},
            }  # fmt: skip
        return self._client.chat.completions.create(model=self.model, messages=messages, temperature=0, **extra)

    def _complete(self, messages: list[dict[str, Any]], codebook: Codebook) -> tuple[str, int, int]:
        """One answer: its text and tokens. Structured output is tried first and dropped for good when
        the server refuses it. Errors that end the run raise BackendError; others _Failed."""
        import openai

        structured = self.structured is not False
        try:
            try:
                response = self._request(messages, codebook, structured)
            except (openai.BadRequestError, openai.UnprocessableEntityError) as error:
                if not structured or self.structured:
                    raise
                response = self._request(messages, codebook, False)  # refused: JSON by the prompt alone
                self._learned(False, error)
            else:
                if structured and self.structured is None:
                    self._learned(True, None)
        except openai.APIConnectionError as error:  # time-outs too, after the client's own retries
            raise BackendError(
                f"Cannot reach {self.where} ({error}) after {self.options.network_retries + 1} tries. Check that the"
                " server runs and the address (--base-url), then run the same command again: images already"
                " answered are not asked again."
            ) from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as error:
            raise BackendError(f"{self.where} refused the key ({_said(error)}); check OPENAI_API_KEY.") from None
        except openai.NotFoundError as error:
            raise BackendError(
                f"{self.where} does not know the model {self.model!r} or the address is wrong ({_said(error)});"
                " check --model and --base-url."
            ) from None
        except openai.RateLimitError as error:
            raise BackendError(
                f"{self.where} keeps refusing requests for their rate or your quota ({_said(error)}). Wait, or check"
                " your plan, then run the same command again: answered images are not asked again."
            ) from None
        except openai.APIStatusError as error:  # a server error after retries, or this request refused
            raise _Failed(f"the server answered {error.status_code}: {_said(error)}") from None
        return _reply_of(response)

    def _learned(self, structured: bool, error: Exception | None) -> None:
        with self._lock:
            if self.structured is None:
                self.structured = structured
                if not structured:
                    self.notify(
                        f"{self.where} does not take structured output ({_said(error)}); the answers are asked as"
                        " JSON in the prompt and checked here, and asked again when they do not fit."
                    )


class _Failed(Exception):
    """A request that failed for this image only; the image becomes an error row that a rerun asks again."""


def _said(error: Any) -> str:
    body = getattr(error, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = body["error"].get("message")
    text = str(message or getattr(error, "message", "") or error)
    return text if len(text) <= 200 else text[:197] + "..."


def _reply_of(response: Any) -> tuple[str, int, int]:
    choice = response.choices[0] if response.choices else None
    text = (choice.message.content if choice is not None and choice.message is not None else None) or ""
    usage = response.usage
    tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0) if usage is not None else 0
    tokens_out = int(getattr(usage, "completion_tokens", 0) or 0) if usage is not None else 0
    return text, tokens_in, tokens_out
