"""Settings files the user writes (labels, codebooks): JSON or YAML, read with errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import SmartSorterError


def read_data_file(path: Path, what: str, error: type[SmartSorterError]) -> Any:
    """The data of a JSON (`.json`) or YAML (any other name) file; `error` raised with a sentence naming
    `what` (such as 'labels file') and the path when it is missing, unreadable or not valid."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"The {what} {str(path)!r} does not exist.") from None
    except (OSError, UnicodeDecodeError) as problem:
        raise error(f"The {what} {str(path)!r} cannot be read: {problem}.") from None
    kind = "JSON" if Path(path).suffix.lower() == ".json" else "YAML"
    try:
        if kind == "JSON":
            return json.loads(text)
        import yaml

        return yaml.safe_load(text)
    except Exception as problem:  # json.JSONDecodeError or yaml.YAMLError
        raise error(f"The {what} {str(path)!r} is not valid {kind}: {problem}") from None
