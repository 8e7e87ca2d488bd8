"""`smart-sorter report --coding`: one HTML page showing a coding, each image beside its answers.

Thumbnails are embedded, nothing is fetched, so it opens offline and can be sent as one file. At the top,
the model, the counts and the cost; then, per question, how often each answer was given; then the images
(the first `shown`), errors framed with their reason. `blur` blurs every image until it is clicked.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from .._version import __version__
from ..core.codebook import SEVERAL, TEXT
from ..core.coding import CODED, CODING_FILE_NAME, spent
from ..pipeline.thumbnails import thumbnail_uri
from .coding_evaluation import coding_codebook
from .coding_sampling import coded_files, refuse_coding_source, where_coded
from .publishing import publish_text, refuse_existing

CODING_REPORT_NAME = "coding-report.html"
SHOWN = 200
TOP_VALUES = 12


def _counts(table: pd.DataFrame, name: str, kind: str) -> list[tuple[str, int]]:
    values = table.loc[table["status"] == CODED, name].astype(str)
    if kind == SEVERAL:
        values = values.str.split("; ").explode()
        values = values[values != ""]
    counts = values.value_counts()
    if kind == TEXT and len(counts) > TOP_VALUES:
        counts = counts.head(TOP_VALUES)
    return [(str(value), int(count)) for value, count in counts.items()]


def render_coding_report(coding: Path, *, shown: int = SHOWN, blur: bool = False) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    folder = Path(coding) if Path(coding).is_dir() else Path(coding).parent
    manifest, source, placed = coded_files(folder)
    codebook = coding_codebook(folder, None)
    table = pd.read_csv(folder / CODING_FILE_NAME, keep_default_na=False, dtype=str)
    cards = [
        {"file": row["file"], "error": row["error"] if row["status"] != CODED else "",
         "answers": [(name, row[name]) for name in codebook.names],
         "video": row.get("frames_sent") if row.get("media") == "video" and row["status"] == CODED else "",
         "image": thumbnail_uri(where_coded(row, folder, source, placed), 228)}
        for row in table.head(shown).to_dict("records")
    ]  # fmt: skip
    tokens_in, tokens_out, cost = spent(table.to_dict("records"))
    model = manifest.get("model")
    environment = Environment(
        loader=PackageLoader("smart_sorter.validation", "templates"), autoescape=select_autoescape(default=True)
    )
    return environment.get_template("coding_report.html.j2").render(
        manifest=manifest, model=model.get("id") if isinstance(model, dict) else model,
        backend=model.get("backend") if isinstance(model, dict) else "", total=len(table), shown=len(cards),
        status_counts=table["status"].value_counts().to_dict(), tokens_in=tokens_in, tokens_out=tokens_out, cost=cost,
        fields=[{"name": field.name, "description": field.description, "counts": _counts(table, field.name, field.kind)}
                for field in codebook.fields],
        cards=cards, blur=blur, created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), version=__version__,
    )  # fmt: skip


def write_coding_report(
    coding: Path, output: Path | None = None, *, force: bool = False, shown: int = SHOWN, blur: bool = False
) -> Path:
    """Write the coding's report (default: beside coding.csv, coding-report.html); never over a file unless
    `force`, never into the folder the images came from."""
    folder = Path(coding) if Path(coding).is_dir() else Path(coding).parent
    output = Path(output) if output is not None else folder / CODING_REPORT_NAME
    _, source, _ = coded_files(folder)
    refuse_coding_source(output, source)
    refuse_existing(output, force=force)
    return publish_text(output, render_coding_report(folder, shown=shown, blur=blur), force=force)
