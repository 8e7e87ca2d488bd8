"""What the form does differently in Google Colab: Drive paths, the embedding cache on Drive, the GPU note.

A Colab runtime's own disk vanishes when the runtime ends; only Google Drive, mounted under
`/content/drive`, stays. So after mounting, the form proposes folders on Drive, keeps the embedding
cache there, and warns when the destination is not on Drive.
"""

from __future__ import annotations

import html
import importlib.util
import os
import sys
from pathlib import Path

DRIVE = Path("/content/drive")
MY_DRIVE = DRIVE / "MyDrive"
DRIVE_CACHE = MY_DRIVE / "smart-sorter-cache"  # embeddings kept across runtimes: new labels need no image pass
DRIVE_DESTINATION = MY_DRIVE / "sorted-images"
CACHE_VARIABLE = "SMART_SORTER_HOME"


def in_colab() -> bool:
    return "google.colab" in sys.modules or importlib.util.find_spec("google.colab") is not None


def on_drive(folder: str) -> bool:
    """Whether `folder` (relative ones from the working directory) lies on the mounted Google Drive."""
    path = Path(folder).expanduser()
    path = path if path.is_absolute() else Path.cwd() / path
    return path == DRIVE or DRIVE in path.parents


def keep_cache_on_drive() -> str | None:
    """Point the embedding cache at Drive unless the user chose a place; returns the folder set, if any."""
    if os.environ.get(CACHE_VARIABLE):
        return None
    os.environ[CACHE_VARIABLE] = str(DRIVE_CACHE)
    return str(DRIVE_CACHE)


def mount_drive() -> None:
    """Colab's own mount (it asks for permission in the browser); its errors are sentences already."""
    from google.colab import drive

    drive.mount(str(DRIVE))


def gpu_note() -> str:
    """One line of HTML: the GPU in use, or how to get one."""
    import torch

    if torch.cuda.is_available():
        return f"<small>GPU: {html.escape(torch.cuda.get_device_name(0))}.</small>"
    return (
        "<b>No GPU:</b> this runtime has only a CPU, so sorting is slow. Choose <i>Runtime &gt; Change runtime"
        " type &gt; T4 GPU</i>, then run this cell again."
    )


def destination_warning(destination: str) -> str:
    """HTML warning when a Colab destination is not on Drive, else empty."""
    if not destination.strip() or on_drive(destination.strip()):
        return ""
    return (
        f"<div class='smart-sorter-drive-warning' style='color:#8a4b00'><b>Not on Google Drive:</b> the result"
        f" will vanish with the runtime. Press <i>Mount Google Drive</i> and choose a destination under"
        f" <code>{MY_DRIVE}/</code> to keep it.</div>"
    )
