"""The notebook form: fields for a run, Start and Stop, live progress, and the result with previews;
Re-sort (new labels on a finished destination, in place) and Undo (with a confirming second click).

The form only gathers settings and shows what happens; the work itself is `sort_images`, `resort`
and `undo`, in a background thread so that the kernel stays responsive and Stop can be pressed.
Works with ipywidgets 7.7 (Colab's, which Colab's renderer needs) and 8.x (Jupyter).
"""

from __future__ import annotations

import html
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.detections import NOTHING_FOUND, row_boxes
from ..errors import OptionError, OtherRunError, SmartSorterError
from ..options import (
    ANIMATED_MODES,
    DEFAULT_DETECTOR,
    DEFAULT_MODEL,
    MAX_VIDEO_FRAMES,
    OUTPUT_FILE_NAME,
    PRECISIONS,
    PREPROCESS_MODES,
    UNCERTAIN_FOLDER,
    SortOptions,
)
from ..pipeline.cpu_threads import let_idle_threads_sleep
from ..pipeline.thumbnails import thumbnail_uri, video_strip
from ..runs.outcome import Progress, SortResult
from ..storage.frame_table import read_frame_times
from . import colab
from .colab import in_colab

try:
    import ipywidgets as widgets
except ImportError as missing:  # the package works without the notebook extra; the form does not
    raise ImportError(
        "The notebook form needs ipywidgets: run `pip install 'smart-sorter[notebook]'` (or `pip install ipywidgets`)"
        " and restart the kernel."
    ) from missing

__all__ = ["FormSettings", "SorterApp", "in_colab"]

# Shown in the model box; any Hugging Face id or local folder may be typed instead. No network call.
SUGGESTED_MODELS: dict[str, str] = {
    SortOptions().model: "CLIP ViT-L/14, the default: most accurate of these; slow without a GPU",
    "openai/clip-vit-base-patch32": "CLIP ViT-B/32, the fast choice: about 30x faster on a CPU",
    "google/siglip-base-patch16-224": "SigLIP: scores each label on its own, good for multi-label tags",
    "geolocal/StreetCLIP": "StreetCLIP, for geolocation: use countries or cities as labels",
    "google/siglip2-base-patch16-224": "SigLIP 2, multilingual: labels in other languages than English",
    DEFAULT_DETECTOR: "OWLv2, an object detector: for 'Find objects' (the labels are the objects)",
}
THUMBNAILS_PER_LABEL = 4
LABEL_FILE_SUFFIXES = (".json", ".yaml", ".yml")
LABELS_PLACEHOLDER = (
    "a comma list: soldiers in uniform, a screenshot of a chat, a meme\n"
    "or one category per line, with prompts after a colon:\n"
    "soldiers: a photo of soldiers; a photo of people in uniform (used as written)\n"
    "documents: a scanned document; a photo of a passport\n"
    "or the path of a JSON or YAML labels file"
)
UNDO_LABEL, CONFIRM_UNDO_LABEL = "Undo", "Confirm undo"


@dataclass(frozen=True)
class FormSettings:
    """What the form asks for: where from, where to, the labels, and the run's options."""

    source: Path
    destination: Path
    labels: str | Path
    options: SortOptions


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


def _preview(row: Any, destination: Path, frame_times: dict[str, list[float]]) -> str:
    """A file's thumbnail; a video's strip of scored frames with their times, its best match outlined."""
    title = html.escape(f"{row['file']} ({row['score']:.2f})", quote=True)
    if row.get("kind") != "video":
        uri = thumbnail_uri(destination / row["destination"], 120, boxes=row_boxes(row))
        return "" if uri is None else f"<img src='{uri}' title='{title}' alt='{title}' style='height:90px;margin:2px'>"
    best = float(row["time"]) if str(row.get("time", "")) not in ("", "nan") else None
    strip = video_strip(destination / row["destination"], frame_times.get(row["file"], []), best, size=90)
    frames = "".join(
        f"<span style='display:inline-block;text-align:center;font-size:10px;margin:1px;"
        f"border:2px solid {'#2b7bd9' if frame.best else 'transparent'}'>"
        f"<img src='{frame.image}' title='{title} at {frame.time:.1f} s' style='height:60px;display:block'>"
        f"{frame.time:.1f} s{' &#9733;' if frame.best else ''}</span>"
        for frame in strip
    )
    apart = "margin:2px 14px 2px 2px"  # from the next file's strip: side by side, two would read as one
    return f"<span style='display:inline-block;{apart};vertical-align:top' title='{title}'>{frames}</span>"


def _previews(
    table: Any,
    destination: Path,
    counts: dict[str, int],
    per_label: int = THUMBNAILS_PER_LABEL,
    csv_path: Path | None = None,
) -> str:
    """A few of the most confident files of each label folder, as embedded thumbnails (a video as a strip
    of its frames, the best match marked)."""
    frame_times = read_frame_times(csv_path or destination / OUTPUT_FILE_NAME)
    blocks = []
    for label in counts:
        if label in (UNCERTAIN_FOLDER, NOTHING_FOUND):
            chosen = table[table["status"] == "uncertain"]
        else:
            chosen = table[(table["status"] == "sorted") & (table["label"] == label)]
        chosen = chosen[chosen["destination"].astype(bool)]
        chosen = chosen.assign(score=chosen["score"].astype(float)).sort_values("score", ascending=False)
        images = [_preview(row, destination, frame_times) for _, row in chosen.head(per_label).iterrows()]
        shown = "".join(images) or "<i>none</i>"
        blocks.append(f"<div><b>{html.escape(label)}</b> ({counts[label]})<br>{shown}</div>")
    return "".join(blocks)


def _advice_list(notes: list[str]) -> str:
    items = "".join(f"<li>{html.escape(note)}</li>" for note in notes)
    return f"<ul class='smart-sorter-advice' style='margin:0;padding-left:1.2em;line-height:1.4'>{items}</ul>"


def _folded(child: widgets.Widget, title: str) -> widgets.Accordion:
    """A closed accordion of one part (`set_title`, `selected_index=None`: both ipywidgets 7 and 8)."""
    box = widgets.Accordion(children=[child], selected_index=None)
    box.set_title(0, title)
    return box


class SorterApp(widgets.VBox):
    """The Smart Sorter form: `source`, `destination`, `model`, `labels`, `operation`, an advanced
    section, `start` / `stop` / `resort` / `undo` buttons, and `status`, `progress`, `counts`,
    `advice` and `results` areas. Its settings start from `options` (default `SortOptions()`).
    The model is loaded once and kept for the next run while its name stays the same.
    """

    def __init__(
        self,
        *,
        source: str = "",
        destination: str = "",
        labels: str = "",
        model: str | None = None,
        options: SortOptions | None = None,
    ) -> None:
        let_idle_threads_sleep()  # before torch loads (the first run loads it): idle model threads leave the cores
        self.defaults = (options or SortOptions()).with_changes(**({"model": model} if model else {}))
        defaults = self.defaults
        self._thread: threading.Thread | None = None
        self._stop_event = threading.Event()
        self._encoder: tuple[str, Any] | None = None  # (model, encoder), kept between runs: no reload
        self._notes: list[str] = []
        self._undo_armed_for: str | None = None
        self._local_paths = (source, destination)  # proposed again on Drive once it is mounted, if unchanged
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
            value=defaults.model,
            options=list(dict.fromkeys([defaults.model, *SUGGESTED_MODELS])),
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
            value=defaults.operation,
            description="Operation",
            tooltips=["Copy: the source stays as it is", "Move: files leave the source (verified first)"],
            layout=widgets.Layout(display="flex"),  # ipywidgets 8 renders it as a block: buttons under the label
            style=style,
        )
        self.batch_size = widgets.BoundedIntText(
            value=defaults.batch_size, min=1, max=4096, description="Batch size", style=style
        )
        self.top_k = widgets.BoundedIntText(
            value=defaults.top_k, min=1, max=100, description="Runners-up (top-k)", style=style
        )
        self.template = widgets.Text(value=defaults.template, description="Template", layout=wide, style=style)
        self.threshold = widgets.BoundedFloatText(
            value=defaults.threshold or 0.0, min=0.0, max=1.0, step=0.05, description="Uncertain below", style=style
        )
        checkbox = {"indent": False, "layout": widgets.Layout(width="auto", margin="2px 0 2px 150px")}
        self.multi_label = widgets.Checkbox(
            value=defaults.multi_label, description="Multi-label tags (every label that applies)", **checkbox
        )
        self.copy_tags = widgets.Checkbox(
            value=defaults.copy_tags, description="Multi-label: also copy into every tag's folder", **checkbox
        )
        self.detect = widgets.Checkbox(
            value=defaults.detect, description="Find objects (detection): labels are objects to look for", **checkbox
        )
        self.tiles = widgets.BoundedIntText(
            value=defaults.tiles, min=0, max=16, description="Tiles across", style=style
        )  # 0: the whole image only
        self.preprocess = widgets.Dropdown(
            options=PREPROCESS_MODES, value=defaults.preprocess, description="Preprocess", style=style
        )
        # auto: fp16 on a GPU, bf16 where the CPU has it natively and it is faster, else fp32
        self.precision = widgets.Dropdown(
            options=PRECISIONS, value=defaults.precision, description="Precision", style=style
        )
        self.dry_run = widgets.Checkbox(
            value=defaults.dry_run, description="Dry run (plan only, touch no file)", **checkbox
        )
        # videos: frames scored evenly spaced, or the keyframes alone (fastest)
        self.video_frames = widgets.BoundedIntText(
            value=defaults.video_frames, min=1, max=MAX_VIDEO_FRAMES, description="Video frames", style=style
        )
        self.video_keyframes = widgets.Checkbox(
            value=defaults.video_keyframes, description="Videos: keyframes only (fastest)", **checkbox
        )
        # animated GIF/WebP/PNG: the first frame as an image, or the frames sampled as a video's
        self.animated = widgets.Dropdown(
            options=list(zip(("first frame", "all frames, as a video"), ANIMATED_MODES)),
            value=defaults.animated, description="Animated images", style=style,
            layout=widgets.Layout(width="max-content"),  # its longer choice whole
        )  # fmt: skip
        self.advanced = _folded(
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
                    self.detect,
                    widgets.HTML(
                        "<small>Tiles across: 0 = off; else each image is also seen in that many overlapping tiles"
                        " across its shorter side, so small things are found.</small>"
                    ),  # fmt: skip
                    self.tiles,
                    self.preprocess,
                    self.precision,
                    self.video_frames,
                    self.video_keyframes,
                    self.animated,
                    self.dry_run,
                ]
            ),
            "Advanced settings",
        )

        # Icon names that FontAwesome 4 (ipywidgets 7) and 5 (ipywidgets 8) both have; no brand icons.
        self.start = widgets.Button(description="Start", button_style="success", icon="play")
        self.stop = widgets.Button(description="Stop", button_style="warning", icon="stop", disabled=True)
        self.resort = widgets.Button(
            description="Re-sort",
            icon="retweet",
            button_style="info",
            tooltip="Sort the finished destination again, in place, with these labels",
            layout=widgets.Layout(width="auto", display="none"),
        )
        self.undo = widgets.Button(
            description=UNDO_LABEL,
            icon="undo",
            tooltip="Put moved files back and remove the copies this destination's run made (asks first)",
            layout=widgets.Layout(width="auto"),
        )
        self.start.on_click(self._on_start)
        self.stop.on_click(self._on_stop)
        self.resort.on_click(self._on_resort)
        self.undo.on_click(self._on_undo)
        self.progress = widgets.IntProgress(value=0, min=0, max=1, layout=widgets.Layout(width="60%"))
        self.progress_text = widgets.HTML()
        self.status = widgets.HTML()
        self.details = widgets.Textarea(disabled=True, layout=widgets.Layout(width="95%", height="160px"))
        self.details_box = _folded(self.details, "Details of the error")
        self.details_box.layout.display = "none"
        self.counts = widgets.HTML()
        self.advice = widgets.HTML()
        self.advice_box = _folded(self.advice, "Advice")
        self.advice_box.layout.display = "none"
        self.results = widgets.HTML()

        colab_parts: list[widgets.Widget] = []
        self.mount_drive: widgets.Button | None = None
        self.drive_warning = widgets.HTML()
        self.gpu_note = widgets.HTML()
        if in_colab():
            self.mount_drive = widgets.Button(
                description="Mount Google Drive", icon="folder-open", layout=widgets.Layout(width="auto")
            )
            self.mount_drive.on_click(self._on_mount_drive)
            self.gpu_note.value = colab.gpu_note()
            colab_parts = [widgets.HBox([self.mount_drive, self.gpu_note])]
            self.destination.observe(self._check_drive, names="value")
            self._check_drive()
        self.destination.observe(self._on_new_destination, names="value")

        super().__init__(
            [
                widgets.HTML("<h3>Smart Sorter</h3>"),
                *colab_parts,
                self.source,
                self.destination,
                self.drive_warning,
                self.model,
                self.model_help,
                self.labels,
                self.operation,
                self.advanced,
                widgets.HBox([self.start, self.stop, self.resort, self.undo]),
                widgets.HBox([self.progress, self.progress_text]),
                self.status,
                self.details_box,
                self.counts,
                self.advice_box,
                self.results,
            ]
        )
        self.add_class("smart-sorter-app")

    # Colab ---------------------------------------------------------------------------------------
    def _on_mount_drive(self, _button: Any) -> None:
        try:
            colab.mount_drive()
        except Exception as error:  # Colab's own messages are sentences already
            self._say(html.escape(f"Google Drive could not be mounted: {error}"), kind="error")
            return
        local_source, local_destination = self._local_paths
        if self.source.value.strip() in ("", local_source):
            self.source.value = f"{colab.MY_DRIVE}/"
        if self.destination.value.strip() in ("", local_destination):
            self.destination.value = str(colab.DRIVE_DESTINATION)
        cache = colab.keep_cache_on_drive()
        kept = f" Image embeddings are kept in <code>{html.escape(cache)}</code> for the next runtime." if cache else ""
        self._say(
            f"Google Drive is mounted under <code>{colab.MY_DRIVE}</code>. Complete the source folder: the folder of"
            f" your images on Drive.{kept}"
        )
        self._check_drive()

    def _check_drive(self, _change: Any = None) -> None:
        self.drive_warning.value = colab.destination_warning(self.destination.value)

    # Running -------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the work in progress ends (for scripts and tests); True when it has ended."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def settings(self) -> FormSettings:
        """The form as a run: source, destination, labels and `SortOptions`; a sentence (OptionError)
        for an empty field or a setting out of range."""
        source, destination = self.source.value.strip(), self.destination.value.strip()
        labels, model = self.labels.value.strip(), self.model.value.strip()
        missing = [name for name, value in (("source folder", source), ("destination", destination),
                                            ("labels", labels), ("model", model)) if not value]  # fmt: skip
        if missing:
            raise OptionError(f"Fill in the {' and the '.join(missing)} first.")
        labels_file = Path(labels).expanduser() if "\n" not in labels else None
        if labels_file is not None and labels_file.suffix.lower() in LABEL_FILE_SUFFIXES and labels_file.is_file():
            labels = labels_file  # the path of a labels file: categories, prompts, thresholds, negatives
        if self.detect.value and model == DEFAULT_MODEL:
            model = DEFAULT_DETECTOR  # the default classifier cannot find objects
        options = self.defaults.with_changes(
            model=model,
            detect=self.detect.value,
            tiles=self.tiles.value,
            operation=self.operation.value,
            batch_size=self.batch_size.value,
            top_k=self.top_k.value,
            template=self.template.value,
            threshold=self.threshold.value or None,
            multi_label=self.multi_label.value,
            copy_tags=self.copy_tags.value,
            preprocess=self.preprocess.value,
            precision=self.precision.value,
            video_frames=self.video_frames.value,
            video_keyframes=self.video_keyframes.value,
            animated=self.animated.value,
            dry_run=self.dry_run.value,
        )
        return FormSettings(Path(source).expanduser(), Path(destination).expanduser(), labels, options)

    def _begin(self, work: Callable[[], None], message_html: str, *, stoppable: bool = False) -> None:
        """Run `work` in the background with the buttons set for it; its failures become sentences."""
        self._disarm()
        self.start.disabled = self.resort.disabled = self.undo.disabled = True
        self.stop.disabled = not stoppable
        self.result = None
        self.counts.value = self.results.value = self.advice.value = ""
        self._notes.clear()
        self.advice_box.layout.display = self.details_box.layout.display = "none"
        self.progress.value, self.progress.bar_style = 0, ""
        self.progress_text.value = ""
        self._say(message_html)
        self._thread = threading.Thread(target=self._guarded, args=(work,), name="smart-sorter-ui", daemon=True)
        self._thread.start()

    def _guarded(self, work: Callable[[], None]) -> None:
        try:
            work()
        except OtherRunError as error:
            self._fail(error.message_for("form"))
            if error.only_labels_changed:
                self.resort.layout.display = None  # the way out the message names
        except SmartSorterError as error:
            self._fail(str(error))
        except Exception as error:  # an unforeseen failure still ends as a sentence; details folded away
            self._fail(
                f"Something unexpected went wrong ({type(error).__name__}: {error}). Files already placed are"
                " recorded in the destination; press Start again to resume, and report the details below.",
                details=traceback.format_exc(),
            )
        finally:
            self.start.disabled = self.resort.disabled = self.undo.disabled = False
            self.stop.disabled = True

    def _settings_or_say(self) -> FormSettings | None:
        try:
            return self.settings()
        except SmartSorterError as error:
            self._say(html.escape(str(error)), kind="error")
            return None

    def _on_start(self, _button: Any) -> None:
        if self.running or (settings := self._settings_or_say()) is None:
            return
        self._stop_event.clear()
        self.resort.layout.display = "none"
        loading = f"Loading the model <code>{html.escape(settings.options.model)}</code> ..."
        self._begin(lambda: self._sort(settings), loading, stoppable=True)

    def _on_stop(self, _button: Any) -> None:
        self._stop_event.set()
        self.stop.disabled = True
        self._say("Stopping after the current batch ...")

    def _on_resort(self, _button: Any) -> None:
        if self.running or (settings := self._settings_or_say()) is None:
            return
        self._begin(lambda: self._resort(settings), "Re-sorting the destination with these labels ...")

    def _on_undo(self, _button: Any) -> None:
        if self.running:
            return
        destination = self.destination.value.strip()
        if not destination:
            self._say("Fill in the destination first: Undo works on the sorting recorded there.", kind="error")
            return
        if self._undo_armed_for != destination:  # undo removes copies: a second, deliberate click
            self._undo_armed_for = destination
            self.undo.description, self.undo.button_style = CONFIRM_UNDO_LABEL, "danger"
            self._say(
                f"Undo the sorting in <code>{html.escape(destination)}</code>? Moved files go back to the source"
                " and the copies the run made are removed, each checked by hash first. Press"
                f" <b>{CONFIRM_UNDO_LABEL}</b> to go ahead, or change the destination to cancel."
            )
            return
        self._begin(lambda: self._undo(Path(destination).expanduser()), "Undoing ...")

    def _on_new_destination(self, _change: Any) -> None:
        self._disarm()
        self.resort.layout.display = "none"  # it re-sorts the destination the refusal was about

    def _disarm(self) -> None:
        self._undo_armed_for = None
        self.undo.description, self.undo.button_style = UNDO_LABEL, ""

    def _loaded_encoder(self, options: SortOptions) -> Any:
        from ..pipeline.detector import load_detector
        from ..pipeline.encoder import load_encoder_for

        key = (options.model, options.model_precision, options.device, options.detect)
        if self._encoder is None or self._encoder[0] != key:
            self._encoder = None  # the old model is let go before the new one loads
            if options.detect:
                loaded = load_detector(
                    options.model, device=options.device, revision=options.revision, precision=options.model_precision
                )
            else:
                loaded = load_encoder_for(options, streamline=True)  # kept for later runs, exact ones too
            self._encoder = (key, loaded)
        return self._encoder[1]

    def _sort(self, settings: FormSettings) -> None:
        from ..runs.sorting import sort_images
        from ..storage.lock import DestinationLock

        started = time.perf_counter()
        purpose = "dry run" if settings.options.dry_run else "sorting run"
        DestinationLock(settings.destination, purpose).check_free()  # busy: said before the model loads
        encoder = self._loaded_encoder(settings.options)
        if not self._stop_event.is_set():
            self._say("Sorting ...")
        result = sort_images(
            settings.source,
            settings.destination,
            settings.labels,
            settings.options,
            encoder=encoder,
            notify=self._note,
            progress_bar=False,
            stop=self._stop_event,
            on_progress=self._show_progress,
        )
        self._finish(result, time.perf_counter() - started)

    def _resort(self, settings: FormSettings) -> None:
        from ..runs.resorting import resort
        from ..storage.tables import read_results

        options = settings.options
        result = resort(
            settings.destination,
            settings.labels,
            template=options.template,
            prompt_mode=options.prompt_mode,
            threshold=options.threshold,
            margin=options.margin,
        )  # with the run's own model and precision: from the cache, the text tower alone is loaded
        self.resort.layout.display = "none"
        self._say(html.escape(result.summary(), quote=False).replace("\n", "<br>"), kind="done")
        self.progress.bar_style = "success"
        self.counts.value = _counts_table(result.label_counts)
        destination = settings.destination.resolve()
        self.results.value = _previews(read_results(destination), destination, result.label_counts)

    def _undo(self, destination: Path) -> None:
        from ..runs.undo import undo_run

        result = undo_run(destination)
        self.resort.layout.display = "none"
        self._say(html.escape(result.summary(), quote=False).replace("\n", "<br>"), kind="done")

    # Showing -------------------------------------------------------------------------------------
    def _say(self, message_html: str, *, kind: str = "info") -> None:
        colour = {"info": "inherit", "error": "#b00020", "done": "#1b5e20"}[kind]
        self.status.value = f"<div class='smart-sorter-status' style='color:{colour}'>{message_html}</div>"

    def _note(self, message: str) -> None:
        """Advice from the run (labels, speed), gathered in one folded list under the counts."""
        self._notes.append(message)
        self.advice.value = _advice_list(self._notes)
        self.advice_box.set_title(0, f"Advice ({len(self._notes)})")
        self.advice_box.layout.display = None

    def _fail(self, message: str, details: str = "") -> None:
        self._say(html.escape(message), kind="error")
        self.progress.bar_style = "danger"
        if details:
            self.details.value = details
            self.details_box.layout.display = None

    def _show_progress(self, progress: Progress) -> None:
        self.progress.max = max(progress.total, 1)
        self.progress.value = progress.done
        text = f"{progress.done} / {progress.total} files"
        if progress.rate:
            text += f" &middot; {progress.rate:.1f} files/s"
        if progress.seconds_left is not None and progress.done < progress.total:
            text += f" &middot; about {_duration(progress.seconds_left)} left"
        self.progress_text.value = text
        self.counts.value = _counts_table(progress.label_counts)

    def _finish(self, result: SortResult, seconds: float) -> None:
        self.result = result
        total = sum(result.status_counts.values())
        sorted_files = result.status_counts.get("sorted", 0)
        parts = [f"{sorted_files} of {total} files {'would be sorted' if result.dry_run else 'sorted'}"]
        if result.detect:  # every file counted: those with objects and those without
            parts = [f"{total} files {'would be sorted' if result.dry_run else 'sorted'}", *result.found_parts()]
        for status in ("error",) if result.detect else ("uncertain", "error"):
            if result.status_counts.get(status):
                parts.append(f"{result.status_counts[status]} {status}")
        where = f"<code>{html.escape(str(result.csv_path))}</code>"
        if result.resumed_files:
            parts.append(f"{result.resumed_files} of them done by the earlier, interrupted run")
        self.counts.value = _counts_table(result.label_counts)
        if not result.dry_run:  # before the status line, so that what it announces is already shown
            self.results.value = _previews(
                result.table, result.destination, result.label_counts, csv_path=result.csv_path
            )
        if result.already_done:
            self.progress.max = self.progress.value = max(total, 1)
            self.progress.bar_style = "success"
            self._say(
                f"Already done: all {total} files were sorted before; nothing was changed. Table: {where}",
                kind="done",
            )
        elif result.stopped_early:
            self._say(
                f"Stopped after {_duration(seconds)}: {total} of {self.progress.max} files done ({', '.join(parts)})."
                f" Press Start with the same settings to {'plan' if result.dry_run else 'sort'} the rest."
                f" Table so far: {where}"
            )
        elif result.dry_run:
            self.progress.bar_style = "success"
            self._say(
                f"Planned in {_duration(seconds)}: {', '.join(parts)}. No file was copied or moved; the plan, with"
                f" where each file would go, is {where}. Untick <i>Dry run</i> and press Start to sort.",
                kind="done",
            )
        else:
            self._say(f"Finished in {_duration(seconds)}: {', '.join(parts)}. Table: {where}", kind="done")
            self.progress.bar_style = "success"
