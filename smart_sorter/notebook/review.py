"""The review widget: one image at a time, least confident first, with its label and runners-up.
Right, Wrong (no label fits), a button per label, Skip, and keys for each; every decision is saved
to corrections.csv at once; "Apply corrections" moves the files to their corrected folders."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.rows import NO_LABEL, runners_up
from ..errors import SmartSorterError
from ..pipeline.thumbnails import thumbnail_jpeg
from ..runs.corrections import CORRECTIONS_FILE_NAME, CorrectionLog, apply_corrections
from ..storage.tables import placed_rows, read_manifest, read_results
from ..validation.evaluation import predicted_labels

try:
    import ipywidgets as widgets
except ImportError as missing:
    raise ImportError(
        "The review widget needs ipywidgets: run `pip install 'smart-sorter[notebook]'` and restart the kernel."
    ) from missing

PREVIEW_PIXELS = 480
KEYS_HELP = "Keys: r right, w wrong (no label fits), 1-9 the label of that number, s skip."


def review_queue(table: pd.DataFrame, reviewed: set[str]) -> pd.DataFrame:
    """Placed files not reviewed yet, least confident first (uncertain ones, then by score)."""
    placed = placed_rows(table)
    placed = placed[~placed["file"].isin(reviewed)].copy()
    placed["_predicted"] = predicted_labels(placed)
    placed["_rank"] = placed["status"].map({"uncertain": 0}).fillna(1)
    return placed.sort_values(["_rank", "score"], kind="stable").reset_index(drop=True)


class ReviewApp(widgets.VBox):
    """Review the run in `destination`; decisions go to `corrections` (DESTINATION/corrections.csv)."""

    def __init__(self, destination: str | Path, *, corrections: str | Path | None = None) -> None:
        self.destination = Path(destination).resolve()
        manifest = read_manifest(self.destination)
        table = read_results(self.destination)
        self.categories: list[str] = list(manifest.get("labels") or dict.fromkeys(x for x in table["label"] if x))
        self.corrections = CorrectionLog(Path(corrections) if corrections else self.destination / CORRECTIONS_FILE_NAME)
        self.queue = review_queue(table, set(self.corrections.decisions))
        self.position = 0

        self.image = widgets.Image(format="jpeg", layout=widgets.Layout(max_width="480px", max_height="480px"))
        self.info = widgets.HTML()
        self.counter = widgets.HTML()
        wide = widgets.Layout(width="auto")
        self.right = widgets.Button(description="Right (r)", button_style="success", icon="check", layout=wide)
        self.wrong = widgets.Button(description="Wrong: no label fits (w)", button_style="danger", icon="times",
                                    layout=wide)  # fmt: skip
        self.skip = widgets.Button(description="Skip (s)", icon="forward", layout=wide)
        self.label_buttons = [
            widgets.Button(description=f"{number}. {label}"[:40], tooltip=label, layout=wide)
            for number, label in enumerate(self.categories, start=1)
        ]
        self.key_input = widgets.Text(placeholder="type a key here: r, w, 1-9, s", description="Keys")
        self.apply = widgets.Button(description="Apply corrections", icon="folder-open", button_style="primary",
                                    layout=wide)  # fmt: skip
        self.status = widgets.HTML()
        self.right.on_click(lambda _: self.decide(self.current_prediction))
        self.wrong.on_click(lambda _: self.decide(NO_LABEL))
        self.skip.on_click(lambda _: self.next())
        for label, button in zip(self.categories, self.label_buttons):
            button.on_click(lambda _, label=label: self.decide(label))
        self.key_input.observe(self._on_key, names="value")
        self.apply.on_click(self._on_apply)
        super().__init__(
            [
                widgets.HTML(f"<h3>Review: {html.escape(str(self.destination))}</h3>"),
                self.counter,
                self.image,
                self.info,
                widgets.HBox([self.right, self.wrong, self.skip]),
                widgets.HBox(self.label_buttons, layout=widgets.Layout(flex_flow="row wrap")),
                self.key_input,
                widgets.HTML(
                    f"<small>{KEYS_HELP} Each decision is saved to"
                    f" <code>{html.escape(str(self.corrections.path))}</code> at once.</small>"
                ),  # fmt: skip
                self.apply,
                self.status,
            ]
        )
        self.add_class("smart-sorter-review")
        self._show()

    @property
    def current(self) -> pd.Series | None:
        return self.queue.iloc[self.position] if self.position < len(self.queue) else None

    @property
    def current_prediction(self) -> str:
        return "" if self.current is None else self.current["_predicted"]

    def decide(self, label: str) -> None:
        """Record `label` as the right label of the current image and show the next one."""
        row = self.current
        if row is None:
            return
        try:
            verdict = self.corrections.record(row["file"], row["_predicted"], label)
        except SmartSorterError as error:
            self.status.value = f"<span style='color:#b00020'>{html.escape(str(error))}</span>"
            return
        self.status.value = f"Saved: {html.escape(row['file'])} is <b>{html.escape(label)}</b> ({verdict})."
        self.next()

    def next(self) -> None:
        self.position += 1
        self._show()

    def _on_key(self, change: dict[str, Any]) -> None:
        key = (change["new"] or "")[-1:].lower()
        if not key:
            return
        self.key_input.value = ""
        if key == "r":
            self.decide(self.current_prediction)
        elif key == "w":
            self.decide(NO_LABEL)
        elif key == "s":
            self.next()
        elif key.isdigit() and 1 <= int(key) <= len(self.categories):
            self.decide(self.categories[int(key) - 1])

    def _on_apply(self, _button: Any) -> None:
        try:
            result = apply_corrections(self.destination, self.corrections.path)
        except SmartSorterError as error:
            self.status.value = f"<span style='color:#b00020'>{html.escape(str(error))}</span>"
            return
        self.status.value = html.escape(result.summary(), quote=False).replace("\n", "<br>")

    def _show(self) -> None:
        reviewed = len(self.corrections.decisions)
        row = self.current
        self.counter.value = f"{reviewed} reviewed &middot; {max(len(self.queue) - self.position, 0)} to go"
        buttons = [self.right, self.wrong, self.skip, *self.label_buttons]
        if row is None:
            self.image.value = b""
            self.info.value = "<b>Nothing left to review.</b> Press <i>Apply corrections</i> to move corrected files."
            for button in buttons:
                button.disabled = True
            return
        moment = float(row["time"]) if row.get("kind") == "video" and str(row.get("time", "")) else 0.0
        path = self.destination / row["destination"]  # a video's frame that matched best
        self.image.value = thumbnail_jpeg(path, PREVIEW_PIXELS, moment=moment) or b""
        others = [f"{html.escape(str(label))} ({score:.3f})" for label, score in runners_up(row)]
        shown = row["_predicted"] if row["_predicted"] != NO_LABEL else f"uncertain (best guess: {row['label']})"
        self.info.value = (
            f"<b>{html.escape(shown)}</b> score {float(row['score']):.3f}"
            + (f" &middot; next: {', '.join(others)}" if others else "")
            + f"<br><small>{html.escape(row['file'])}</small>"
        )
