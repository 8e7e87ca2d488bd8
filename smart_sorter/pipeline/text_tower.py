"""A dual encoder with its text tower only: what re-sorting from cached image embeddings needs.

The default model's image tower has 303M parameters and its text tower 123M; reading only the
text tower's weights makes a fully cached re-sort start several times sooner. The model is built
without initialising its weights (nothing is computed or touched), the image tower is dropped, and
the remaining weights are taken from the model's safetensors files, which are memory-mapped, so the
image tower's bytes are never read. Any model whose files do not allow that (old `.bin` weights, a
checkpoint whose names differ from the model's) is loaded whole instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .precision import vision_modules

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
TEXT_ONLY_MARK = "_smart_sorter_text_only"


def _weight_files(location: str, revision: str | None, options: dict[str, Any]) -> list[Path] | None:
    """The model's safetensors files (one, or the shards an index names), or None when it has none."""
    from transformers.utils import cached_file

    def fetch(name: str) -> Path | None:
        found = cached_file(location, name, revision=revision, _raise_exceptions_for_missing_entries=False,
                            **options)  # fmt: skip
        return Path(found) if found else None

    single = fetch(SINGLE_FILE)
    if single is not None:
        return [single]
    index = fetch(INDEX_FILE)
    if index is None:
        return None
    shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
    files = [fetch(shard) for shard in shards]
    return None if any(file is None for file in files) else files


def load_text_side(location: str, revision: str | None = None, **options: Any) -> Any | None:
    """The model at `location` without its image tower (its vision modules set to None), weights in
    float32, or None when this model cannot be loaded that way (then load it whole)."""
    import torch
    from safetensors import safe_open
    from transformers import AutoConfig, AutoModelForZeroShotImageClassification
    from transformers.initialization import no_init_weights

    files = _weight_files(location, revision, options)
    if files is None:
        return None
    config = AutoConfig.from_pretrained(location, revision=revision, **options)
    with no_init_weights():  # every weight is overwritten below: initialising them would waste seconds
        network = AutoModelForZeroShotImageClassification.from_config(config)
    names = vision_modules(network)
    if not names:
        return None
    for name in names:
        delattr(network, name)
        setattr(network, name, None)
    wanted = set(network.state_dict())
    weights: dict[str, Any] = {}
    for file in files:
        with safe_open(str(file), framework="pt") as stored:
            weights.update({key: stored.get_tensor(key) for key in wanted.intersection(stored.keys())})
    if set(weights) != wanted:  # the checkpoint names its weights differently: let transformers map them
        return None
    network.load_state_dict(weights, strict=True, assign=True)
    setattr(network, TEXT_ONLY_MARK, True)
    return network.to(dtype=torch.float32).eval()


def has_image_tower(network: Any) -> bool:
    return not getattr(network, TEXT_ONLY_MARK, False)
