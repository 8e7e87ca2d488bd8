"""`CodingApp`: the notebook form that asks every image a codebook's questions (or one question).

Fields are attributes (`source`, `destination`, `codebook`, `question`, `backend`, `model`, `base_url`,
`price_in`, `price_out`, `retry_errors`, each with `.value`), as in `SorterApp`; `start` runs the coding in
the background, `stop` ends it after the current batch, `status` says what happened in a sentence, and
`answers` shows the first rows of coding.csv. All the work is `runs.coding.code_images`.
"""

from __future__ import annotations

import html
import threading
import traceback
from pathlib import Path
from typing import Any

try:
    import ipywidgets as widgets
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError("The notebook form needs ipywidgets: pip install 'smart-sorter[notebook]'.") from error

from ..core.coding import BACKENDS, CodingOptions
from ..errors import CodebookError, SmartSorterError
from ..runs.coding import CodingResult, code_images

SHOWN_ROWS = 20
EXAMPLE = "image_type:\n  description: What kind of image is this?\n  options: [photo, meme, screenshot]\n"
WHERE = {
    "local": "The model runs on this machine: no image leaves it.",
    "openai": "Every image is sent to the server at the address below (OpenAI's API when empty).",
}


def _text(description: str, value: str = "", placeholder: str = "") -> widgets.Text:
    return widgets.Text(value=value, description=description, placeholder=placeholder,
                        style={"description_width": "9em"}, layout=widgets.Layout(width="95%"))  # fmt: skip


class CodingApp(widgets.VBox):
    """The coding form; `options` gives its starting settings."""

    def __init__(self, options: CodingOptions | None = None, **kwargs: Any) -> None:
        options = options or CodingOptions()
        self.source = _text("Images", placeholder="a folder, or a sorting's destination")
        self.destination = _text("coding.csv into", placeholder="a folder (a sorting's own by default)")
        self.codebook = widgets.Textarea(value=EXAMPLE, description="Codebook", style={"description_width": "9em"},
                                         layout=widgets.Layout(width="95%", height="10em"))  # fmt: skip
        self.question = _text("or one question", placeholder="Is there a weapon in the image? (yes/no)")
        self.backend = widgets.ToggleButtons(options=list(BACKENDS), value=options.backend, description="Model runs")
        self.where = widgets.HTML(WHERE[options.backend])
        self.model = _text("Model", options.model or "", placeholder=options.model_name)
        self.base_url = _text("Server", options.base_url or "", placeholder="http://127.0.0.1:8000/v1")
        self.price_in = widgets.FloatText(value=options.price_in, description="Price in / M")
        self.price_out = widgets.FloatText(value=options.price_out, description="Price out / M")
        self.retry_errors = widgets.Checkbox(
            value=options.retry_errors,
            indent=False,
            description="Ask errors again (answers that never fit; pays again)",
        )
        self.start, self.stop = (
            widgets.Button(description="Start", button_style="primary"),
            widgets.Button(description="Stop", disabled=True),
        )
        self.status, self.answers = widgets.HTML(), widgets.HTML()
        self.options, self.result = options, None
        self._stop, self._thread = threading.Event(), None
        self.backend.observe(lambda change: setattr(self.where, "value", WHERE[change["new"]]), names="value")
        self.start.on_click(self._on_start)
        self.stop.on_click(lambda _button: self._stop.set())
        parts = [self.source, self.destination, self.codebook, self.question, self.backend, self.where, self.model,
                 self.base_url, widgets.HBox([self.price_in, self.price_out]), self.retry_errors,
                 widgets.HBox([self.start, self.stop]),
                 self.status, self.answers]  # fmt: skip
        super().__init__(parts, **kwargs)

    def settings(self) -> dict[str, Any]:
        """What the form says, as `code_images` takes it; CodebookError/SmartSorterError when it cannot."""
        if not self.source.value.strip():
            raise SmartSorterError("Give the folder of images to code.")
        question = self.question.value.strip()
        codebook: Any = None
        if not question:
            import yaml

            text = self.codebook.value.strip()
            try:
                codebook = Path(text) if text.endswith((".yaml", ".yml", ".json")) else yaml.safe_load(text)
            except yaml.YAMLError as error:
                raise CodebookError(f"The codebook is not valid YAML: {error}") from None
        options = self.options.with_changes(
            backend=self.backend.value, model=self.model.value.strip() or None,
            base_url=self.base_url.value.strip() or None, price_in=self.price_in.value, price_out=self.price_out.value,
            retry_errors=self.retry_errors.value,
        )  # fmt: skip
        destination = self.destination.value.strip()
        return {"source": Path(self.source.value.strip()).expanduser(), "codebook": codebook, "ask": question or None,
                "destination": Path(destination).expanduser() if destination else None, "options": options}  # fmt: skip

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def _on_start(self, _button: Any) -> None:
        try:
            settings = self.settings()
        except SmartSorterError as error:
            self._say(str(error), kind="error")
            return
        self._stop.clear()
        self.start.disabled, self.stop.disabled = True, False
        self.answers.value = ""
        self._say("Coding... (the first batch loads the model)")
        self._thread = threading.Thread(target=self._code, args=(settings,), name="smart-sorter-code", daemon=True)
        self._thread.start()

    def _code(self, settings: dict[str, Any]) -> None:
        try:
            self.result = code_images(**settings, stop=self._stop, progress_bar=False, notify=self._note)
            self._show(self.result)
        except SmartSorterError as error:
            self._say(str(error), kind="error")
        except Exception as error:  # an unforeseen failure still ends as a sentence
            self._say(f"Something unexpected went wrong ({type(error).__name__}: {error}). Press Start again to"
                      " resume; answered images are not asked again.", kind="error")  # fmt: skip
            self.answers.value = f"<pre>{html.escape(traceback.format_exc())}</pre>"
        finally:
            self.start.disabled, self.stop.disabled = False, True

    def _note(self, message: str) -> None:
        self._say(message)

    def _show(self, result: CodingResult) -> None:
        self._say(result.summary(), kind="done")
        shown = result.table.head(SHOWN_ROWS)[["file", *result.codebook.names, "status", "error"]]
        self.answers.value = shown.to_html(index=False, escape=True, na_rep="")

    def _say(self, message: str, *, kind: str = "info") -> None:
        colour = {"info": "inherit", "error": "#b00020", "done": "#1b5e20"}[kind]
        text = html.escape(message, quote=False).replace("\n", "<br>")
        self.status.value = f"<div class='smart-sorter-status' style='color:{colour}'>{text}</div>"
