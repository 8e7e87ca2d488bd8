"""The notebook form: fields for a run, Start and Stop, live progress, and the result with previews.

The form only gathers settings and shows what happens; the run itself is `sort_images`, in a
background thread so that the kernel stays responsive and Stop can be pressed.
"""

from __future__ import annotations

import html
import importlib.util
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from ..errors import OptionError, SmartSorterError
from ..options import DEFAULT_MODEL, DEFAULT_TEMPLATE, PREPROCESS_MODES, UNCERTAIN_FOLDER
from ..pipeline.thumbnails import thumbnail_uri
from ..runs.outcome import Progress, SortResult

try:
    import ipywidgets as widgets
except ImportError as missing:  # the package works without the notebook extra; the form does not
    raise ImportError(
        "The notebook form needs ipywidgets: run `pip install 'smart-sorter[notebook]'` (or `pip install ipywidgets`)"
        " and restart the kernel."
    ) from missing

# Shown in the model box; any Hugging Face id or local folder may be typed instead. No network call.
SUGGESTED_MODELS: dict[str, str] = {
    DEFAULT_MODEL: "CLIP ViT-L/14, the default: most accurate of these; slow without a GPU",
    "openai/clip-vit-base-patch32": "CLIP ViT-B/32, the fast choice: about 30x faster on a CPU",
    "google/siglip-base-patch16-224": "SigLIP: scores each label on its own, good for multi-label tags",
    "geolocal/StreetCLIP": "StreetCLIP, for geolocation: use countries or cities as labels",
    "google/siglip2-base-patch16-224": "SigLIP 2, multilingual: labels in other languages than English",
}
THUMBNAILS_PER_LABEL = 4
LABEL_FILE_SUFFIXES = (".json", ".yaml", ".yml")
LABELS_PLACEHOLDER = (
    "a comma list: a photo of a soldier, a screenshot of a chat, a meme\n"
    "or one category per line, with prompts after a colon:\n"
    "soldiers: a photo of soldiers; a photo of people in uniform\n"
    "documents: a scanned document; a photo of a passport\n"
    "or the path of a JSON or YAML labels file"
)


def in_colab() -> bool:
    return "google.colab" in sys.modules or importlib.util.find_spec("google.colab") is not None


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def _counts_table(label_counts: dict[str, int]) -> str:
    cells = "".join(
        f"<tr><td>{html.escape(label)}</td><td style='text-align:right'>{count}</td></tr>"
        for label, count in label_counts.items()
    )
    return f"<table class='smart-sorter-counts'><tr><th>label</th><th>files</th></tr>{cells}</table>"


def _previews(result: SortResult, per_label: int = THUMBNAILS_PER_LABEL) -> str:
    """A few of the most confident files of each label folder, as embedded thumbnails."""
    table = result.table
    blocks = []
    for label in result.label_counts:
        if label == UNCERTAIN_FOLDER:
            chosen = table[table["status"] == "uncertain"]
        else:
            chosen = table[(table["status"] == "sorted") & (table["label"] == label)]
        chosen = chosen[chosen["destination"].astype(bool)].sort_values("score", ascending=False).head(per_label)
        images = []
        for _, row in chosen.iterrows():
            uri = thumbnail_uri(result.destination / row["destination"], 120)
            if uri is not None:
                title = html.escape(f"{row['file']} ({row['score']:.2f})", quote=True)
                images.append(f"<img src='{uri}' title='{title}' alt='{title}' style='height:90px;margin:2px'>")
        shown = "".join(images) or "<i>none</i>"
        blocks.append(f"<div><b>{html.escape(label)}</b> ({result.label_counts[label]})<br>{shown}</div>")
    return "".join(blocks)


class SorterApp(widgets.VBox):
    """The Smart Sorter form: `source`, `destination`, `model`, `labels`, `operation`, an advanced
    section, `start` / `stop` buttons, and `status`, `progress`, `counts` and `results` areas.
    The model is loaded once and kept for the next run while its name stays the same.
    """

    def __init__(
        self,
        *,
        source: str = "",
        destination: str = "",
        labels: str = "",
        model: str = DEFAULT_MODEL,
    ) -> None:
        self._thread: threading.Thread | None = None
        self._stop_event = threading.Event()
        self._encoder: tuple[str, Any] | None = None  # (model, encoder), kept between runs: no reload
        self.result: SortResult | None = None
        wide = widgets.Layout(width="95%")
        style = {"description_width": "140px"}

        self.source = widgets.Text(
            value=source, description="Source folder", placeholder="folder holding the images", layout=wide, style=style
        )
        self.destination = widgets.Text(
            value=destination,
            description="Destination",
            placeholder="folder to sort into (created if missing)",
            layout=wide,
            style=style,
        )
        self.model = widgets.Combobox(
            value=model,
            options=list(SUGGESTED_MODELS),
            description="Model",
            placeholder="a Hugging Face model id or a local folder",
            ensure_option=False,
            layout=wide,
            style=style,
        )
        suggestions = "".join(
            f"<li><code>{html.escape(name)}</code>: {html.escape(text)}</li>" for name, text in SUGGESTED_MODELS.items()
        )
        self.model_help = widgets.HTML(
            f"<ul style='margin:0 0 0 150px;padding:0;line-height:1.4;font-size:90%'>{suggestions}</ul>"
        )
        self.labels = widgets.Textarea(
            value=labels,
            description="Labels",
            placeholder=LABELS_PLACEHOLDER,
            layout=widgets.Layout(width="95%", height="110px"),
            style=style,
        )
        self.operation = widgets.ToggleButtons(
            options=[("Copy", "copy"), ("Move", "move")],
            value="copy",
            description="Operation",
            tooltips=["Copy: the source stays as it is", "Move: files leave the source (verified first)"],
            style=style,
        )
        self.batch_size = widgets.BoundedIntText(value=32, min=1, max=1024, description="Batch size", style=style)
        self.top_k = widgets.BoundedIntText(value=3, min=1, max=20, description="Runners-up (top-k)", style=style)
        self.template = widgets.Text(value=DEFAULT_TEMPLATE, description="Template", layout=wide, style=style)
        self.threshold = widgets.BoundedFloatText(
            value=0.0, min=0.0, max=1.0, step=0.05, description="Uncertain below", style=style
        )
        checkbox = {"value": False, "indent": False, "layout": widgets.Layout(width="auto", margin="2px 0 2px 150px")}
        self.multi_label = widgets.Checkbox(description="Multi-label tags (every label that applies)", **checkbox)
        self.copy_tags = widgets.Checkbox(description="Multi-label: also copy into every tag's folder", **checkbox)
        self.preprocess = widgets.Dropdown(options=PREPROCESS_MODES, description="Preprocess", style=style)
        self.dry_run = widgets.Checkbox(description="Dry run (plan only, touch no file)", **checkbox)
        self.advanced = widgets.Accordion(
            children=[
                widgets.VBox(
                    [
                        self.batch_size,
                        self.top_k,
                        self.template,
                        widgets.HTML(
                            "<small>Uncertain below: 0 = off; files whose best score is lower go to"
                            " <code>uncertain/</code>.</small>"
                        ),  # fmt: skip
                        self.threshold,
                        self.multi_label,
                        self.copy_tags,
                        self.preprocess,
                        self.dry_run,
                    ]
                )
            ],
            selected_index=None,
        )
        self.advanced.set_title(0, "Advanced settings")

        self.start = widgets.Button(description="Start", button_style="success", icon="play")
        self.stop = widgets.Button(description="Stop", button_style="warning", icon="stop", disabled=True)
        self.start.on_click(self._on_start)
        self.stop.on_click(self._on_stop)
        self.progress = widgets.IntProgress(value=0, min=0, max=1, layout=widgets.Layout(width="60%"))
        self.progress_text = widgets.HTML()
        self.status = widgets.HTML()
        self.notes = widgets.HTML()
        self.details = widgets.Textarea(disabled=True, layout=widgets.Layout(width="95%", height="160px"))
        self.details_box = widgets.Accordion(children=[self.details], selected_index=None)
        self.details_box.set_title(0, "Details of the error")
        self.details_box.layout.display = "none"
        self.counts = widgets.HTML()
        self.results = widgets.HTML()

        colab_parts: list[widgets.Widget] = []
        self.mount_drive: widgets.Button | None = None
        if in_colab():
            self.mount_drive = widgets.Button(description="Mount Google Drive", icon="google")
            self.mount_drive.on_click(self._on_mount_drive)
            colab_parts = [self.mount_drive, widgets.HTML(self._colab_gpu_note())]

        super().__init__(
            [
                widgets.HTML("<h3>Smart Sorter</h3>"),
                *colab_parts,
                self.source,
                self.destination,
                self.model,
                self.model_help,
                self.labels,
                self.operation,
                self.advanced,
                widgets.HBox([self.start, self.stop]),
                widgets.HBox([self.progress, self.progress_text]),
                self.status,
                self.notes,
                self.details_box,
                self.counts,
                self.results,
            ]
        )
        self.add_class("smart-sorter-app")

    # Colab ---------------------------------------------------------------------------------------
    @staticmethod
    def _colab_gpu_note() -> str:
        import torch

        if torch.cuda.is_available():
            return f"<small>GPU: {html.escape(torch.cuda.get_device_name(0))}.</small>"
        return (
            "<b>No GPU:</b> this runtime has only a CPU, so sorting is slow. Choose <i>Runtime &gt; Change runtime"
            " type &gt; T4 GPU</i>, then run this cell again."
        )

    def _on_mount_drive(self, _button: Any) -> None:
        try:
            from google.colab import drive

            drive.mount("/content/drive")
        except Exception as error:  # Colab's own messages are sentences already
            self._say(html.escape(f"Google Drive could not be mounted: {error}"), kind="error")
            return
        self._say("Google Drive is mounted under <code>/content/drive/MyDrive</code>.")
        if not self.source.value:
            self.source.value = "/content/drive/MyDrive/"

    # Running -------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run in progress ends (for scripts and tests); True when it has ended."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def settings(self) -> dict[str, Any]:
        """The form as keyword arguments of `sort_images`; a sentence (OptionError) for an empty field."""
        source, destination = self.source.value.strip(), self.destination.value.strip()
        labels, model = self.labels.value.strip(), self.model.value.strip()
        missing = [name for name, value in (("source folder", source), ("destination", destination),
                                            ("labels", labels), ("model", model)) if not value]  # fmt: skip
        if missing:
            raise OptionError(f"Fill in the {' and the '.join(missing)} first.")
        labels_file = Path(labels).expanduser() if "\n" not in labels else None
        if labels_file is not None and labels_file.suffix.lower() in LABEL_FILE_SUFFIXES and labels_file.is_file():
            labels = labels_file  # the path of a labels file: categories, prompts, thresholds, negatives
        return {
            "source": Path(source).expanduser(),
            "destination": Path(destination).expanduser(),
            "labels": labels,
            "model": model,
            "operation": self.operation.value,
            "batch_size": self.batch_size.value,
            "top_k": self.top_k.value,
            "template": self.template.value,
            "threshold": self.threshold.value or None,
            "multi_label": self.multi_label.value,
            "copy_tags": self.copy_tags.value,
            "preprocess": self.preprocess.value,
            "dry_run": self.dry_run.value,
        }

    def _on_start(self, _button: Any) -> None:
        if self.running:
            return
        try:
            settings = self.settings()
        except SmartSorterError as error:
            self._say(html.escape(str(error)), kind="error")
            return
        self._stop_event.clear()
        self.start.disabled, self.stop.disabled = True, False
        self.result = None
        self.notes.value = self.counts.value = self.results.value = ""
        self.details_box.layout.display = "none"
        self.progress.value, self.progress.bar_style = 0, ""
        self.progress_text.value = ""
        self._say(f"Loading the model <code>{html.escape(settings['model'])}</code> ...")
        self._thread = threading.Thread(target=self._run, args=(settings,), name="smart-sorter-ui", daemon=True)
        self._thread.start()

    def _on_stop(self, _button: Any) -> None:
        self._stop_event.set()
        self.stop.disabled = True
        self._say("Stopping after the current batch ...")

    def _loaded_encoder(self, model: str) -> Any:
        from ..pipeline.encoder import load_encoder

        if self._encoder is None or self._encoder[0] != model:
            self._encoder = None  # the old model is let go before the new one loads
            self._encoder = (model, load_encoder(model))
        return self._encoder[1]

    def _run(self, settings: dict[str, Any]) -> None:
        started = time.perf_counter()
        try:
            from ..runs.sorting import sort_images

            encoder = self._loaded_encoder(settings["model"])
            if not self._stop_event.is_set():
                self._say("Sorting ...")
            result = sort_images(
                **settings,
                encoder=encoder,
                notify=self._note,
                progress_bar=False,
                stop=self._stop_event,
                on_progress=self._show_progress,
            )
        except SmartSorterError as error:
            self._fail(str(error))
        except Exception as error:  # an unforeseen failure still ends as a sentence; details folded away
            self._fail(
                f"Something unexpected went wrong ({type(error).__name__}: {error}). Files already placed are"
                " recorded in the destination; press Start again to resume, and report the details below.",
                details=traceback.format_exc(),
            )
        else:
            self._finish(result, time.perf_counter() - started)
        finally:
            self.start.disabled, self.stop.disabled = False, True

    # Showing -------------------------------------------------------------------------------------
    def _say(self, message_html: str, *, kind: str = "info") -> None:
        colour = {"info": "inherit", "error": "#b00020", "done": "#1b5e20"}[kind]
        self.status.value = f"<div class='smart-sorter-status' style='color:{colour}'>{message_html}</div>"

    def _note(self, message: str) -> None:
        self.notes.value += f"<div class='smart-sorter-note'><small>Note: {html.escape(message)}</small></div>"

    def _fail(self, message: str, details: str = "") -> None:
        self._say(html.escape(message), kind="error")
        self.progress.bar_style = "danger"
        if details:
            self.details.value = details
            self.details_box.layout.display = None

    def _show_progress(self, progress: Progress) -> None:
        self.progress.max = max(progress.total, 1)
        self.progress.value = progress.done
        text = f"{progress.done} / {progress.total} images"
        if progress.rate:
            text += f" &middot; {progress.rate:.1f} images/s"
        if progress.seconds_left is not None and progress.done < progress.total:
            text += f" &middot; about {_duration(progress.seconds_left)} left"
        self.progress_text.value = text
        self.counts.value = _counts_table(progress.label_counts)

    def _finish(self, result: SortResult, seconds: float) -> None:
        self.result = result
        total = sum(result.status_counts.values())
        sorted_files = result.status_counts.get("sorted", 0)
        parts = [f"{sorted_files} of {total} files sorted"]
        for status in ("uncertain", "error"):
            if result.status_counts.get(status):
                parts.append(f"{result.status_counts[status]} {status}")
        where = html.escape(str(result.csv_path))
        if result.resumed_files:
            parts.append(f"{result.resumed_files} of them done by the earlier, interrupted run")
        if result.stopped_early:
            message = (
                f"Stopped after {_duration(seconds)}: {total} of {self.progress.max} files done ({', '.join(parts)})."
                f" Press Start with the same settings to sort the rest. Table so far: <code>{where}</code>"
            )
            self._say(message)
        else:
            message = f"Finished in {_duration(seconds)}: {', '.join(parts)}. Table: <code>{where}</code>"
            self._say(message, kind="done")
            self.progress.bar_style = "success"
        self.counts.value = _counts_table(result.label_counts)
        self.results.value = "" if self.dry_run.value else _previews(result)
